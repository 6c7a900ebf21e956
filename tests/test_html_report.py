"""Reports people look at: ``--html`` (rendered in headless Chromium), ``--model-explorer`` node
data, and SARIF validated against the official 2.1.0 schema (tests/schemas)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import MODELS, ROOT
from convlint.analyzers.report.findings import CheckReport, ConversionReport

SCHEMA = ROOT / "tests" / "schemas" / "sarif-2.1.0-rtm.5.json"


def _diff(tmp, target, *extra):
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "convlint",
            "diff",
            str(MODELS / "resnet.pt2"),
            str(MODELS / target),
            "--no-tvm",
            "--format",
            "json",
            "--html",
            str(tmp / "report.html"),
            "--model-explorer",
            str(tmp / "overlay.json"),
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp,
    )
    return p, json.loads(p.stdout)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    """A pair with one tampered weight tensor, repaired: every part of the report is present."""
    tmp = tmp_path_factory.mktemp("faulty")
    p, doc = _diff(
        tmp, "resnet.torch.tampered.onnx", "--repair", "--output", str(tmp / "repaired.onnx")
    )
    assert p.returncode == 1, p.stderr[-2000:]
    return tmp, doc, p.stderr


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clean")
    p, doc = _diff(tmp, "resnet.torch.onnx")
    assert p.returncode == 0, p.stderr[-2000:]
    return tmp, doc, p.stderr


def _chromium():
    exe = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("headless Chromium is required in CI (.ci/run installs Debian's chromium)")
        pytest.skip("no chromium on this machine (apt install chromium)")
    return exe


def _render(html_path, tmp, screenshot=None):
    """The DOM after load (scripts run), as headless Chromium sees the file."""
    flags = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--disable-background-networking", "--no-first-run", "--disable-extensions",
             f"--user-data-dir={tmp / 'chromium-profile'}", "--virtual-time-budget=5000"]
    dom = subprocess.run(
        [*flags, "--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    if screenshot:
        shot = subprocess.run(
            [*flags, "--window-size=1280,2000", f"--screenshot={screenshot}", html_path.as_uri()],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-2000:]
    return dom.stdout


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium_with_the_plot(faulty):
    tmp, doc, _ = faulty
    html = (tmp / "report.html").read_text()
    assert (
        "http://" not in html.replace("http://www.w3.org", "")
        and "https://" not in html.split("<main>")[0]
    )
    dom = _render(tmp / "report.html", tmp, screenshot=tmp / "shot.png")
    # the page's own script counts the plots that decoded: the per-layer plot is there and drawn
    assert re.search(r'data-plots="1"', dom) and re.search(r'data-plots-rendered="1"', dom), dom[
        :500
    ]
    # the plot marks where the error first jumps: the first-divergent finding's layer (its fused
    # group)
    first = next(f for f in doc["findings"] if f["rule"] == "CL110")
    group = {first["layer"], *first["evidence"]["fused_group"]}
    alt = re.search(r'<img class="plot" alt="([^"]+)"', dom).group(1)
    jump = alt.split("first jumps at ")[1].split(" (with ")[0]
    assert jump in group, (alt, group)
    # the alignment table highlights the same layer; the findings carry the verified repair with
    # before/after
    row = re.search(r'<tr class="first">(.*?)</tr>', dom, re.S).group(1)
    assert jump in row
    assert "CL204" in dom and "verified" in dom and "before" in dom and "after" in dom
    assert "repaired.onnx" in dom
    from PIL import Image

    img = Image.open(tmp / "shot.png").convert("RGB")
    # a rendered page, not a blank one
    assert img.size == (1280, 2000) and len(set(img.getdata())) > 50


@pytest.mark.slow
def test_clean_twin_html_says_so_and_writes_no_overlay(clean):
    tmp, doc, err = clean
    assert doc["verdict"] == "equivalent" and not [
        f for f in doc["findings"] if f["severity"] == "error"
    ]
    html = (tmp / "report.html").read_text()
    assert "v-equivalent" in html and "no per-layer comparison was needed" in html
    assert 'class="plot"' not in html
    assert not (tmp / "overlay.json").exists() and "no per-layer errors to overlay" in err
    assert not (tmp / "overlay.sync.json").exists()
    dom = _render(tmp / "report.html", tmp)
    assert 'data-plots="0"' in dom


@pytest.mark.slow
def test_model_explorer_overlay_is_keyed_by_the_target_s_node_ids(faulty):
    """Keyed as Model Explorer's ONNX adapter names the nodes (the node's name, ``[value] x`` for a
    graph input): its nodes carry no ``tensor_name``, so tensor names would colour nothing
    (checked in Model Explorer itself: tests/test_model_explorer.py)."""
    import onnx

    tmp, doc, _ = faulty
    data = json.loads((tmp / "overlay.json").read_text())
    assert set(data) == {"results", "thresholds"}
    model = onnx.load(str(MODELS / "resnet.torch.tampered.onnx"))
    ids = {n.name for n in model.graph.node} | {f"[value] {i.name}" for i in model.graph.input}
    assert data["results"] and set(data["results"]) <= ids
    assert all(isinstance(v["value"], float) and v["value"] >= 0 for v in data["results"].values())
    marked = [k for k, v in data["results"].items() if "bgColor" in v]
    assert len(marked) == 1  # the node where the error first jumps
    first = next(f for f in doc["findings"] if f["rule"] == "CL110")
    producer = next(n for n in model.graph.node if n.name == marked[0])
    assert (
        producer.op_type in ("Conv", "BatchNormalization", "Relu")
        and data["results"][marked[0]]["value"] > first["evidence"]["threshold"]
    )
    th = [t["value"] for t in data["thresholds"]]
    assert th == sorted(th) and th[0] == first["evidence"]["threshold"]


def _validator():
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )


def test_the_shipped_schema_is_the_official_one_and_rejects_bad_documents():
    v = _validator()
    assert "2.1.0" in v.schema["title"] and "sarifLog" not in v.schema.get("required", [])
    assert list(v.iter_errors({"version": "2.1.0", "runs": [{"tool": {}}]}))  # driver missing
    assert list(v.iter_errors({"version": "9", "runs": []}))


def test_sarif_of_scripts_validates_against_the_official_schema(tmp_path):
    for name in ("tflite_optimize.py", "torch_not_eval.py", "layout.clean.py"):
        shutil.copy(ROOT / "fixtures" / "scripts" / name, tmp_path)
    p = subprocess.run(
        [sys.executable, "-m", "convlint", "check", "--format", "sarif"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    doc = json.loads(p.stdout)
    errors = list(_validator().iter_errors(doc))
    assert not errors, [e.message for e in errors[:5]]
    assert any(r.get("fixes") for r in doc["runs"][0]["results"])


@pytest.mark.slow
def test_sarif_of_a_conversion_with_a_repair_validates(faulty):
    from convlint.analyzers.report.ci import to_sarif

    _, doc, _ = faulty
    sarif = json.loads(to_sarif(CheckReport((ConversionReport.from_dict(doc),))))
    errors = list(_validator().iter_errors(sarif))
    assert not errors, [e.message for e in errors[:5]]
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]} >= {"CL100", "CL110", "CL204"}


# -- fast: the HTML and overlay builders on a synthetic report ---------------------------------
def _synthetic(layer="conv<script>alert(1)</script>"):
    layers = [{"layer": "input", "target": "input", "rel_err": 0.0},
              {"layer": "a", "target": "t_a", "rel_err": 1e-7},
              # fused away: compared with the chain's output
              {"layer": layer, "target": "t_fused", "rel_err": 2.0},
              {"layer": "bn", "target": "t_fused", "rel_err": 0.3},
              {"layer": "out", "target": "t_out", "rel_err": None}]   # non-finite in the target
    return {
        "tool": {"name": "convlint", "version": "0"},
        "kind": "conversion",
        "source": {"path": "m.keras", "format": "keras"},
        "target": {"path": "m.tflite", "format": "tflite"},
        "inputs": {"count": 4, "origin": "random"},
        "verdict": "divergent",
        "metrics": {"max_abs": 1.0, "mean_abs": 0.1, "cosine_min": 0.5, "top1_agreement": 0.5},
        "findings": [
            {
                "rule": "CL110",
                "severity": "error",
                "stage": "graph",
                "message": f"first divergent layer: {layer}",
                "layer": layer,
                "location": {},
                "hyperparameter": None,
                "evidence": {"rel_err": 0.3, "fused_group": [layer, "bn"], "threshold": 1e-4},
                "repair": None,
            }
        ],
        "localization": {
            "layers": layers,
            "alignment": {
                "kernels": [
                    {"source": layer, "target": "t_fused", "method": "weights", "score": 1.0}
                ]
            },
        },
    }


def test_html_escapes_model_strings_and_groups_fused_layers():
    from convlint.analyzers.report.html import first_jump, layer_groups, to_html

    d = _synthetic()
    html = to_html(ConversionReport.from_dict(d))
    assert (
        "<script>alert(1)</script>" not in html
        and "conv&lt;script&gt;alert(1)&lt;/script&gt;" in html
    )
    assert html.count("<script>") == 1  # only the page's own
    groups = layer_groups(d["localization"]["layers"])
    assert [g["layer"] for g in groups] == ["input", "a", "bn", "out"]
    assert groups[2]["fused"] == [d["findings"][0]["layer"]]
    assert first_jump(d, groups) == 2
    assert 'class="plot"' in html and "data:image/png;base64," in html


def test_overlay_marks_the_first_jump_and_keeps_non_finite_errors_as_numbers():
    from convlint.analyzers.report.overlay import node_data

    data = node_data(_synthetic())
    assert set(data["results"]) == {"input", "t_a", "t_fused", "t_out"}
    assert data["results"]["t_fused"]["bgColor"] and "bgColor" not in data["results"]["t_a"]
    assert data["results"]["t_out"]["value"] >= 1e30
    json.dumps(data, allow_nan=False)


def test_reports_never_overwrite_an_input_or_a_model(tmp_path):
    q = tmp_path / "s.py"
    q.write_text("x = 1\n")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"not really a model")
    for flag, path in (("--html", q), ("--html", model), ("--output-file", model)):
        p = subprocess.run(
            [sys.executable, "-m", "convlint", "check", str(q), flag, str(path)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert p.returncode == 2 and "refusing to overwrite" in p.stderr, (flag, path, p.stderr)
    assert q.read_text() == "x = 1\n" and model.read_bytes() == b"not really a model"
    # an unwritable path: a clear error, not a bug
    for flag in ("--html", "--output-file", "--model-explorer"):
        p = subprocess.run(
            [sys.executable, "-m", "convlint", "check", str(q), flag, str(q / "r.html")],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert (
            p.returncode == 2 and "cannot write" in p.stderr and "internal error" not in p.stderr
        ), p.stderr


def test_html_puts_errors_first_collapses_info_and_carries_the_run(tmp_path):
    from convlint.analyzers.report.findings import Finding, ModelRef, Repair
    from convlint.analyzers.report.html import CSS, to_html

    info = Finding("CL206", "info", "parameters", "int8 noise budget")
    err = Finding(
        "CL201",
        "error",
        "parameters",
        "conv_layer_with_a_long_name weights differ",
        layer="conv_layer_with_a_long_name",
        repair=Repair("patch-weights", "copy", str(tmp_path / "out" / "m.repaired.onnx"), True),
    )
    r = ConversionReport(
        ModelRef("m.pt2", "torch-exported"),
        ModelRef("m.onnx", "onnx"),
        {"count": 4, "origin": "random"},
        "divergent",
        {"max_abs": 0.1, "mean_abs": 0.01, "cosine_min": 0.9999951, "top1_agreement": 1.0},
        (info, err),
    )
    html = to_html(
        r,
        command="convlint diff m.pt2 m.onnx --html r.html",
        when="2026-12-07 21:00:00 UTC",
        path=str(tmp_path / "r.html"),
    )
    assert html.index("CL201") < html.index("CL206")  # the error above the info
    details = html[html.index("<details class=infos>"):]
    assert "1 info finding</summary>" in details and "CL206" in details and "CL201" not in details
    assert "<b>0.999995</b><span>min cosine" in html  # not rounded up to 1
    assert '<a class=mono href="out/m.repaired.onnx">' in html  # the repaired file, a relative link
    assert "convlint diff m.pt2 m.onnx --html r.html" in html and "2026-12-07 21:00:00 UTC" in html
    assert "convlint 0." in html
    assert "break-all" not in CSS and "anywhere" not in CSS  # names never wrap mid-word
    # the clean twin: no findings, no collapsed section, no header extras unless given
    clean = to_html(ConversionReport(None, None, {}, "equivalent", {"cosine_min": 1.0}, ()))
    assert "<details class=infos>" not in clean and "No findings." in clean and "cmd" not in clean


def test_model_explorer_sync_mapping_has_model_explorer_s_shape():
    """The split-pane sync file: Model Explorer's SyncNavigationData (``mapping`` one-to-one,
    ``mappingEntries`` with leftNodeIds/rightNodeIds for one-to-many and many-to-one), each node id
    in one entry only."""
    from convlint.analyzers.report.sync import sync_mapping

    d = _synthetic("conv")
    d["localization"]["layers"].append({"layer": "head", "target": "t_x;t_y", "rel_err": 0.5})
    m = sync_mapping(d)
    json.dumps(m, allow_nan=False)
    assert set(m) == {"mapping", "mappingEntries", "showDiffHighlights", "disableMappingFallback"}
    for e in m["mappingEntries"]:
        assert set(e) == {"leftNodeIds", "rightNodeIds"}
        assert all(isinstance(i, str) for i in e["leftNodeIds"] + e["rightNodeIds"])
    by_left = {tuple(e["leftNodeIds"]): e["rightNodeIds"] for e in m["mappingEntries"]}
    assert by_left[("bn", "conv")] == ["t_fused"]  # many-to-one: a fused chain, one target op
    assert by_left[("head",)] == ["t_x;t_y", "t_x", "t_y"]  # one-to-many: a tensor naming two ops
    assert m["mapping"] == {"input": "input", "a": "t_a", "out": "t_out"}  # one-to-one
    lefts = [i for e in m["mappingEntries"] for i in e["leftNodeIds"]]
    rights = [i for e in m["mappingEntries"] for i in e["rightNodeIds"]]
    assert len(lefts) == len(set(lefts)) and len(rights) == len(set(rights))
    # an ONNX target: the tensor's producing node too (Model Explorer's ONNX adapter's node id)
    from convlint.analyzers.report.sync import _targets

    assert _targets("/conv1/Conv_output_0", "onnx") == ["/conv1/Conv_output_0", "/conv1/Conv"]
    assert _targets("/conv1/Conv_output_0", "tflite") == ["/conv1/Conv_output_0"]
    # the clean twin (no localization): no mapping, no file
    clean = dict(d, localization=None, verdict="equivalent")
    assert sync_mapping(clean) is None


def test_model_explorer_sync_file_links_the_source_s_nodes_to_the_target_s_nodes(faulty):
    """Both sides by Model Explorer's node ids: the .pt2 source's FX node names, the ONNX
    target's node names (the overlay's keys); a convolution whose batch norm the converter folded
    into it is linked with that one Conv, not with whatever tensor it was compared with."""
    import onnx
    import torch

    tmp, doc, err = faulty
    m = json.loads((tmp / "overlay.sync.json").read_text())
    assert "sync mapping written to" in err
    model = onnx.load(str(MODELS / "resnet.torch.tampered.onnx"))
    ids = {n.name for n in model.graph.node} | {f"[value] {i.name}" for i in model.graph.input}
    rights = {i for e in m["mappingEntries"] for i in e["rightNodeIds"]}
    overlay = json.loads((tmp / "overlay.json").read_text())
    assert rights and rights <= ids
    assert rights == set(overlay["results"])  # every coloured node is linked
    fx = {n.name for n in torch.export.load(str(MODELS / "resnet.pt2")).graph.nodes}
    lefts = {i for e in m["mappingEntries"] for i in e["leftNodeIds"]}
    assert lefts and lefts <= fx
    by_right = {tuple(e["rightNodeIds"]): set(e["leftNodeIds"]) for e in m["mappingEntries"]}
    assert by_right[("/conv1/Conv",)] == {"conv2d_1", "batch_norm_1"}
    assert by_right[("/conv2/Conv",)] == {"conv2d_2", "batch_norm_2"}
    assert by_right[("/relu/Relu",)] == {"relu_1"}
    assert by_right[("[value] input",)] == {"x"}
