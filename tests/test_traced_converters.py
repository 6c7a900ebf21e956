"""onnx2torch, onnx2tf and litert-torch as converters that `check` knows statically and `trace`
instruments (analyzers/sandbox/tracer_boot.py) with their flags.

Each converter pins its own framework versions, so `trace` runs the script with that environment's
interpreter (``--python``). The environments are bench/realbugs' (git-ignored), built on first use:

    .venv/bin/python bench/realbugs/run.py --setup onnx2torch   # and onnx2tf, litert

Tests that need one skip, saying that command, when it is absent. The faults are the realbugs cases
themselves (their ``build`` calls the converter; the traced script runs it), not copies of them:
onnx2torch's CumSum with ``reverse`` read as 1 and onnx2tf's Mod with ``fmod`` ignored, each CL305
on the layer; the clean twin (onnx2torch's convnet case) traces clean.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

CASES = ROOT / "bench" / "realbugs" / "cases"


def _env(name: str) -> str:
    """The interpreter of the converter's environment; skip when it is not built (or half built)."""
    py = ROOT / "bench" / "realbugs" / f".venv-{name}" / "bin" / "python"
    module = {"litert": "litert_torch"}.get(name, name)
    probe = f"import importlib.util, sys; sys.exit(importlib.util.find_spec({module!r}) is None)"
    if not py.exists() or subprocess.run([str(py), "-c", probe], timeout=60).returncode != 0:
        pytest.skip(
            f"the {name} environment is not built: .venv/bin/python bench/realbugs/run.py "
            f"--setup {name}"
        )
    return str(py)


def _check(tmp_path: Path, text: str) -> list:
    script = tmp_path / "convert.py"
    script.write_text(textwrap.dedent(text))
    p = run_cli("check", str(script), "--format", "json")
    assert p.returncode in (0, 1), p.stderr[-2000:]
    (report,) = json.loads(p.stdout)["reports"]
    return report["converter_calls"]


# --- the static check ---------------------------------------------------------------------------
def test_check_knows_onnx2torch_and_onnx2tf_calls_and_their_flags(tmp_path):
    calls = _check(
        tmp_path,
        """
        import onnx2tf
        from onnx2torch import convert

        module = convert("model.onnx")
        onnx2tf.convert(input_onnx_file_path="model.onnx", output_folder_path="out",
                        not_use_onnxsim=True)
    """,
    )
    by = {c["converter"]: c for c in calls}
    assert by["onnx2torch"]["line"] == 5 and by["onnx2torch"]["call"] == "onnx2torch.convert"
    assert by["onnx2tf"]["flags"]["not_use_onnxsim"] is True
    assert by["onnx2tf"]["output"] == "out"


def test_check_knows_litert_torch_convert_its_recipe_and_export(tmp_path):
    calls = _check(
        tmp_path,
        """
        import torch
        import litert_torch
        from litert_torch.generative.quantize import quant_recipes

        model = torch.nn.Linear(4, 2).eval()
        edge = litert_torch.convert(model, (torch.randn(1, 4),),
                                    quant_config=quant_recipes.full_dynamic_recipe())
        edge.export("model.tflite")
    """,
    )
    (c,) = calls
    assert c["converter"] == "litert_torch" and c["line"] == 7
    assert "quant_config" in c["flags"] and c["output"] == "model.tflite"


# --- trace, in each converter's own environment ---------------------------------------------------
def _trace_case(tmp_path: Path, case: str, python: str) -> dict:
    script = tmp_path / "convert.py"
    script.write_text(
        textwrap.dedent(f"""
        import pathlib
        import sys

        sys.path.insert(0, {str(CASES)!r})
        import {case} as case

        src, _ = case.build(pathlib.Path("built").resolve())
        if "onnx2tf" in {case!r}:  # the case runs onnx2tf's CLI; the traced call is the API's
            import onnx2tf

            onnx2tf.convert(input_onnx_file_path=str(src), output_folder_path="tf_out",
                            non_verbose=True)
    """)
    )
    if "onnx2tf" in case:  # onnx2tf downloads a calibration file unless it is here
        import numpy as np

        np.save(
            tmp_path / "calibration_image_sample_data_20x128x128x3_float32.npy",
            np.zeros((20, 128, 128, 3), np.float32),
        )
    bin_dir = str(Path(python).parent)
    p = run_cli(
        "trace",
        str(script),
        "--allow-exec",
        "--cwd",
        str(tmp_path),
        "--no-tvm",
        "--python",
        python,
        "--format",
        "json",
        "--timeout",
        "900",
        env={"PATH": bin_dir + ":" + __import__("os").environ["PATH"]},
        timeout=1500,
    )
    assert p.returncode in (0, 1), p.stderr[-3000:]
    return json.loads(p.stdout)


@pytest.mark.slow
@pytest.mark.parametrize(
    "case, converter, layer",
    [
        ("onnx2torch_cumsum_reverse_default", "onnx2torch", "cumsum"),
        ("onnx2tf_mod_fmod_ignored", "onnx2tf", "wrap"),
    ],
)
def test_trace_captures_the_converter_and_finds_its_fault(tmp_path, case, converter, layer):
    doc = _trace_case(tmp_path, case, _env(converter))
    (conv,) = [c for c in doc["conversions"] if c["converter"] == converter]
    assert conv["call"] == f"{converter}.convert" and conv["converter_version"] not in (
        "",
        "unknown",
    )
    assert conv["verdict"] == "divergent"
    rules = {f["rule"]: f for f in conv["findings"]}
    assert rules["CL305"]["layer"] == layer, conv["findings"]


@pytest.mark.slow
def test_trace_of_the_clean_onnx2torch_twin_is_clean(tmp_path):
    doc = _trace_case(tmp_path, "onnx2torch_clean_convnet", _env("onnx2torch"))
    (conv,) = [c for c in doc["conversions"] if c["converter"] == "onnx2torch"]
    assert conv["verdict"] == "equivalent", conv["findings"]
    assert not [f for f in conv["findings"] if f["severity"] == "error"]


LITERT_SCRIPT = """
import torch
import litert_torch
from litert_torch.generative.quantize import quant_recipes


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16 * 8 * 8, 64)
        self.head = torch.nn.Linear(64, 10)

    def forward(self, x):
        y = torch.relu(self.conv(x)).flatten(1)
        return self.head(torch.relu(self.fc(y)))


torch.manual_seed(0)
model = Net().eval()
sample = (torch.randn(1, 3, 8, 8),)
edge = litert_torch.convert(model, sample{recipe})
edge.export("model.tflite")
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe, faulty",
    [
        (", quant_config=quant_recipes.full_dynamic_recipe()", True),
        ("", False),
    ],
)
def test_trace_of_litert_torch_captures_the_recipe_and_finds_quantized_weights(
    tmp_path, recipe, faulty
):
    python = _env("litert")
    script = tmp_path / "convert.py"
    script.write_text(LITERT_SCRIPT.format(recipe=recipe))
    call_line = (
        script.read_text()
        .splitlines()
        .index(next(x for x in script.read_text().splitlines() if "litert_torch.convert(" in x))
        + 1
    )
    p = run_cli(
        "trace",
        str(script),
        "--allow-exec",
        "--cwd",
        str(tmp_path),
        "--no-tvm",
        "--python",
        python,
        "--format",
        "json",
        "--timeout",
        "900",
        timeout=1500,
    )
    assert p.returncode in (0, 1), p.stderr[-3000:]
    (conv,) = json.loads(p.stdout)["conversions"]
    assert conv["converter"] == "litert_torch" and conv["call_site"]["line"] == call_line
    if faulty:
        assert conv["flags"]["quant_config"], conv["flags"]
        assert "CL201" in {f["rule"] for f in conv["findings"]}, conv["findings"]
    else:
        assert conv["verdict"] == "equivalent", conv["findings"]
        assert not [f for f in conv["findings"] if f["severity"] == "error"]
