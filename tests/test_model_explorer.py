"""``--model-explorer``'s two files opened in the real Google Model Explorer (ai-edge-model-explorer
0.1.34 with the ONNX adapter model-explorer-onnx), in headless Chromium driven by playwright: the
source (.pt2) and the converted model (.onnx) side by side, the node data colouring the converted
model's nodes, and the sync mapping uploaded through the split pane's "Upload mapping from
computer" (0.1.34 takes a mapping from nowhere else), linking a source node to its target node.

About a minute (Model Explorer's server imports torch): a benchmark-marked test, run by
``make test-explorer``. The screenshot is kept in the test's tmp dir (printed path).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import quote

import pytest

from conftest import MODELS

pytestmark = pytest.mark.bench
INSTALL = "pip install -e '.[explorer-test]' (or: make test-explorer)"
SOURCE, TARGET = MODELS / "resnet.pt2", MODELS / "resnet.torch.tampered.onnx"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


def _need():
    for mod in ("model_explorer", "model_explorer_onnx", "playwright"):
        pytest.importorskip(mod, reason=f"{mod} is not installed: {INSTALL}")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("no chromium on this machine (apt install chromium)")
    return exe


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def explorer(tmp_path_factory):
    """A Model Explorer server on loopback, started beside the convlint run that writes the files
    (both take seconds; the machine has two cores)."""
    exe = _need()
    tmp = tmp_path_factory.mktemp("explorer")
    port = _free_port()
    log = open(tmp / "model-explorer.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "model_explorer", "--host", "127.0.0.1",
                               "--port", str(port), "--no_open_in_browser", "--skip_health_check",
                               "--extensions", "model_explorer_onnx"],
                              stdout=log, stderr=subprocess.STDOUT, cwd=tmp)
    try:
        p = subprocess.run([sys.executable, "-m", "convlint", "diff", str(SOURCE), str(TARGET),
                            "--no-tvm", "--format", "json", "--model-explorer",
                            str(tmp / "overlay.json")],
                           capture_output=True, text=True, timeout=600, cwd=tmp)
        assert p.returncode == 1, p.stderr[-2000:]
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + 180
        while True:
            try:
                urllib.request.urlopen(url, timeout=2).read(64)
                break
            except OSError:
                assert server.poll() is None, (tmp / "model-explorer.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "Model Explorer's server did not start in 180 s"
                time.sleep(1)
        yield exe, url, tmp
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def _pane(label: str, graph: str) -> dict:
    return {"deepestExpandedGroupNodeIds": [], "selectedNodeId": "", "selectedGraphId": graph,
            "selectedCollectionLabel": label, "widthFraction": 0.5}


def test_the_overlay_and_the_sync_mapping_load_in_model_explorer(explorer):
    from playwright.sync_api import sync_playwright

    exe, url, tmp = explorer
    overlay = json.loads((tmp / "overlay.json").read_text())
    sync = json.loads((tmp / "overlay.sync.json").read_text())
    # the mapping links the fused conv + batch norm of the source to the one target Conv
    entry = next(e for e in sync["mappingEntries"] if "/conv1/Conv" in e["rightNodeIds"])
    assert set(entry["leftNodeIds"]) == {"conv2d_1", "batch_norm_1"}
    data = {"models": [{"url": str(SOURCE)}, {"url": str(TARGET), "adapterId": "onnx_adapter"}],
            "nodeData": [str(tmp / "overlay.json")], "nodeDataTargets": [TARGET.name],
            "uiState": {"paneStates": [_pane(SOURCE.name, ""), _pane(TARGET.name, "main_graph")]}}
    shot = tmp / "model-explorer.png"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(url + "?data=" + quote(json.dumps(data)))
            # both models, side by side
            page.get_by_text(f"{TARGET.name} | main_graph").wait_for(timeout=120_000)
            page.get_by_text(f"{SOURCE.name} | graph").wait_for(timeout=120_000)
            # the node data: every node the overlay names carries its value in the side panel
            page.get_by_text("Aggregated stats").wait_for(timeout=60_000)
            rows = _node_data_rows(page)
            valued = {label for label, value in rows if value != "-"}
            assert len([v for _, v in rows if v != "-"]) == len(overlay["results"]), rows
            assert {"Conv", "Relu", "Add", "GlobalAveragePool", "Gemm"} <= valued
            first = next(k for k, v in overlay["results"].items() if "bgColor" in v)
            assert first == "/conv1/Conv"
            # the mapping, uploaded as a user would
            page.get_by_text("Sync", exact=True).click()
            page.get_by_text("Upload mapping from computer").click()
            page.set_input_files("input.upload-mapping-input", str(tmp / "overlay.sync.json"))
            page.get_by_text("overlay.sync.json").wait_for(timeout=10_000)
            page.keyboard.press("Escape")
            # select the source's batch_norm_1 as a user would: locate it (the search centres it in
            # its pane), then click it
            search = page.get_by_placeholder("Search nodes/layers by regex").first
            search.fill("batch_norm_1")
            assert "/conv1/Conv" not in page.inner_text("body")
            page.get_by_text("aten.batch_norm").first.click()
            page.keyboard.press("Escape")
            box = page.locator("canvas").first.bounding_box()
            assert box is not None
            page.wait_for_timeout(2000)  # the pane pans to the located node
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            # the converted model's pane follows: /conv1/Conv revealed and selected (its node info
            # shown); before the click no panel names it
            _wait_text(page, "/conv1/Conv", tmp / "model-explorer-waiting.png")
            page.wait_for_timeout(1000)
            page.screenshot(path=str(shot))
            body = page.inner_text("body")
            assert "batch_norm_1" in body and "/conv1/Conv" in body
            assert f"{overlay['results']['/conv1/Conv']['value']}" in body
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")


def _wait_text(page, text: str, shot, timeout: float = 30.0) -> None:
    t0 = time.monotonic()
    while text not in page.inner_text("body"):
        if time.monotonic() - t0 > timeout:
            page.screenshot(path=str(shot))
            pytest.fail(f"{text!r} not shown in {timeout:.0f} s; see {shot}")
        page.wait_for_timeout(250)


def _node_data_rows(page) -> list:
    """(node label, value) rows of the side panel's "Node data" table (the converted model's)."""
    text = page.inner_text("body")
    part = text[text.index("Node data", text.index("Root-level nodes stats")):]
    rows = []
    for line in part.splitlines():
        cells = [c.strip() for c in line.split("\t")]
        if len(cells) == 3 and cells[0].isdigit():
            rows.append((cells[1], cells[2]))
    return rows


def test_the_files_name_model_explorer_s_node_ids(explorer):
    """The clean-twin side of the check, without a browser: every id the two files name is a node
    id Model Explorer's adapters give these models (a name they do not know colours nothing)."""
    from model_explorer import extension_manager

    _, _, tmp = explorer
    em = extension_manager.ExtensionManager(["model_explorer_onnx"])
    em.load_extensions()

    def ids(path, ext):
        r = em.run_cmd({"extensionId": ext, "cmdId": "convert", "modelPath": str(path),
                        "settings": {"const_element_count_limit": 16}})
        return {n["id"] for g in r["graphs"] for n in g["nodes"]}

    left = ids(SOURCE, "builtin_pytorch_exportedprogram")
    right = ids(TARGET, "onnx_adapter")
    overlay = json.loads((tmp / "overlay.json").read_text())
    sync = json.loads((tmp / "overlay.sync.json").read_text())
    assert set(overlay["results"]) <= right
    assert {i for e in sync["mappingEntries"] for i in e["leftNodeIds"]} <= left
    assert {i for e in sync["mappingEntries"] for i in e["rightNodeIds"]} <= right
    assert os.path.exists(tmp / "overlay.sync.json")


def test_the_tflite_overlay_loads_in_model_explorer(explorer):
    """The demo's pair (mobilenet.keras -> mobilenet.dynint8.tflite): the overlay, keyed by the
    built-in TFLite adapter's node ids, gives every op its value. Model Explorer 0.1.34 cannot
    open a .keras file, so the sync mapping's Keras side cannot be shown; its TFLite side is
    checked against the adapter's ids in tests/test_model_explorer_ids.py."""
    from playwright.sync_api import sync_playwright

    exe, url, tmp = explorer
    src, tgt = MODELS / "mobilenet.keras", MODELS / "mobilenet.dynint8.tflite"
    out = tmp / "tflite" / "overlay.json"
    out.parent.mkdir()
    p = subprocess.run([sys.executable, "-m", "convlint", "diff", str(src), str(tgt), "--no-tvm",
                        "--format", "json", "--model-explorer", str(out)],
                       capture_output=True, text=True, timeout=600, cwd=out.parent)
    assert p.returncode == 1, p.stderr[-2000:]
    overlay = json.loads(out.read_text())
    data = {"models": [{"url": str(tgt), "adapterId": "builtin_tflite_flatbuffer"}],
            "nodeData": [str(out)], "nodeDataTargets": [tgt.name]}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(url + "?data=" + quote(json.dumps(data)))
            _wait_text(page, "Aggregated stats", out.parent / "model-explorer-waiting.png", 120)
            rows = _node_data_rows(page)
            page.screenshot(path=str(out.parent / "model-explorer.png"))
            valued = [label for label, value in rows if value != "-"]
            assert len(valued) == len(overlay["results"]) == 7, rows
            assert {"conv_2d", "depthwise_conv_2d", "mean", "fully_connected"} <= set(valued)
        finally:
            browser.close()
