"""``--model-explorer``'s files for the demo's Keras -> TFLite pair name the node ids Model
Explorer's built-in TFLite adapter gives the converted model (no browser: the adapter's convert
command, as the page runs it). Skipped without ``pip install -e '.[explorer]'``.

Model Explorer 0.1.34 has no adapter for ``.keras``, so the mapping's left side (the Keras layer
names) cannot be checked against one; the right side and the overlay are.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import MODELS

SOURCE, TARGET = MODELS / "mobilenet.keras", MODELS / "mobilenet.dynint8.tflite"


def test_the_tflite_files_name_model_explorer_s_node_ids(tmp_path):
    pytest.importorskip("model_explorer", reason="pip install -e '.[explorer]'")
    cmd = [sys.executable, "-m", "convlint", "diff", str(SOURCE), str(TARGET), "--no-tvm",
           "--format", "json", "--model-explorer", str(tmp_path / "overlay.json")]
    run = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=tmp_path)  # beside the adapter's import of torch
    from model_explorer import extension_manager

    em = extension_manager.ExtensionManager([])
    em.load_extensions()
    r = em.run_cmd({"extensionId": "builtin_tflite_flatbuffer", "cmdId": "convert",
                    "modelPath": str(TARGET), "settings": {"const_element_count_limit": 16}})
    nodes = {n["id"]: n for c in r["graphCollections"] for g in c["graphs"] for n in g["nodes"]}
    _, err = run.communicate(timeout=300)
    assert run.returncode == 1, err[-2000:]
    overlay = json.loads((tmp_path / "overlay.json").read_text())
    sync = json.loads((tmp_path / "overlay.sync.json").read_text())
    right = {i for e in sync["mappingEntries"] for i in e["rightNodeIds"]}
    assert set(overlay["results"]) <= set(nodes) and right <= set(nodes)
    # one value per op and the graph input; the first jump is the int8 projection conv (op 3)
    assert len(overlay["results"]) == 7
    first = next(k for k, v in overlay["results"].items() if "bgColor" in v)
    assert first == "3" and nodes[first]["label"] == "conv_2d"
    assert nodes[overlay_key(sync, "gap")]["label"] == "mean"
    # the folded chain: three Keras layers, one fused conv_2d
    entry = next(e for e in sync["mappingEntries"] if "stem_conv" in e["leftNodeIds"])
    assert set(entry["leftNodeIds"]) == {"stem_conv", "stem_bn", "stem_relu6"}
    assert [nodes[i]["label"] for i in entry["rightNodeIds"]] == ["conv_2d"]


def overlay_key(sync: dict, left: str) -> str:
    return next(e["rightNodeIds"][0] for e in sync["mappingEntries"] if left in e["leftNodeIds"])
