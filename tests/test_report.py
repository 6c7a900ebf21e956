"""The JSON report follows ../shared/contract.md, and reads back."""

import json

import pytest

from convlint.analyzers.report.findings import (
    ConversionReport,
    Finding,
    Location,
    ModelRef,
    Repair,
)
from convlint.analyzers.report.render import to_json, to_text

CONTRACT_KEYS = {"tool", "kind", "source", "target", "inputs", "verdict", "metrics", "findings"}
FINDING_KEYS = {"rule", "severity", "stage", "message", "layer", "location", "hyperparameter",
                "evidence", "repair"}


def sample():
    f = Finding(
        "CL201",
        "error",
        "parameters",
        "conv2d_3 weights differ",
        layer="conv2d_3",
        location=Location(file="convert.py", line=12, column=4, source_node="a", target_node="b"),
        evidence={"max_abs": 0.012},
        repair=Repair("patch-weights", "copy", "m.repaired.tflite", True, {"max_abs": 0.0}),
    )
    return ConversionReport(
        ModelRef("m.keras", "keras"),
        ModelRef("m.tflite", "tflite"),
        {"count": 32, "origin": "random"},
        "divergent",
        {"max_abs": 0.5, "mean_abs": 0.1, "cosine_min": 0.9, "top1_agreement": None},
        (f,),
        {"tolerance": {"atol": 1e-4}},
    )


def test_json_has_every_contract_field_and_reads_back():
    d = json.loads(to_json(sample()))
    assert CONTRACT_KEYS <= set(d)
    assert d["tool"]["name"] == "convlint" and d["kind"] == "conversion"
    assert set(d["metrics"]) == {"max_abs", "mean_abs", "cosine_min", "top1_agreement"}
    assert set(d["findings"][0]) == FINDING_KEYS
    assert d["findings"][0]["location"]["line"] == 12
    back = ConversionReport.from_dict(d)
    assert back == sample()


def test_exit_codes():
    assert sample().exit_code == 1
    eq = ConversionReport(None, None, {}, "equivalent", {}, ())
    assert eq.exit_code == 0
    assert ConversionReport(None, None, {}, "error", {}, ()).exit_code == 2


def test_findings_are_immutable_and_validated():
    f = sample().findings[0]
    with pytest.raises(AttributeError):
        f.rule = "X"
    assert f.with_(severity="warning").severity == "warning"
    with pytest.raises(ValueError):
        Finding("CL1", "fatal", "graph", "m")


def test_non_finite_numbers_still_give_valid_json():
    r = ConversionReport(None, None, {}, "divergent",
                         {"max_abs": float("inf"), "mean_abs": float("nan"), "cosine_min": 1.0,
                          "top1_agreement": None}, ())
    d = json.loads(to_json(r))
    assert d["metrics"]["mean_abs"] is None and d["metrics"]["max_abs"] > 1e300


def test_text_summary_is_short_and_names_the_verdict():
    t = to_text(sample())
    assert "DIVERGENT" in t and "CL201" in t and "repair (patch-weights, verified)" in t
    assert len(t.splitlines()) < 10


def test_json_column_is_0_based_and_column_1based_matches_sarif():
    from convlint.analyzers.report.ci import to_sarif
    from convlint.analyzers.report.findings import CheckReport, ScriptReport

    f = Finding(
        "CL411",
        "error",
        "conversion-tool",
        "int8",
        location=Location(file="c.py", line=3, column=4),
    )
    rep = ScriptReport("c.py", "issues", (f,))
    loc = json.loads(to_json(rep))["findings"][0]["location"]
    assert loc["column"] == 4 and loc["column_1based"] == 5
    region = json.loads(to_sarif(CheckReport((rep,))))["runs"][0]["results"][0]["locations"][0][
        "physicalLocation"
    ]["region"]
    assert region["startColumn"] == loc["column_1based"]
    assert "c.py:3:5: CL411 [error] int8" in to_text(rep)  # text: 1-based, with the severity
    # the added field never breaks the read-back
    assert Finding.from_dict(json.loads(to_json(rep))["findings"][0]).location == f.location
    assert "column_1based" not in Location(file="c.py").to_dict()  # clean twin: no column, no field


def test_every_script_finding_line_carries_its_severity():
    from convlint.analyzers.report.findings import ScriptReport

    fs = (
        Finding(
            "CL411",
            "error",
            "conversion-tool",
            "a",
            location=Location(file="c.py", line=1, column=0),
        ),
        Finding(
            "CL420",
            "warning",
            "conversion-tool",
            "b",
            location=Location(file="c.py", line=2, column=0),
        ),
    )
    lines = to_text(ScriptReport("c.py", "issues", fs)).splitlines()[1:]
    assert lines == ["c.py:1:1: CL411 [error] a", "c.py:2:1: CL420 [warning] b"]


def test_an_unverified_repair_says_how_to_verify_it():
    f = sample().findings[0]
    planned = f.with_(repair=Repair("patch-weights", "copy the source weights"))
    t = to_text(ConversionReport(None, None, {}, "divergent", {}, (planned,)))
    assert "not verified: rerun with --repair to write and verify it" in t
    # written but failing its re-check: no hint to rerun, --repair was given
    failed = f.with_(repair=Repair("patch-weights", "copy", "m.repaired.tflite", False))
    t = to_text(ConversionReport(None, None, {}, "divergent", {}, (failed,)))
    assert "(patch-weights, not verified)" in t and "--repair" not in t
    # the clean twin: a verified repair says verified and nothing more
    assert "--repair" not in to_text(sample())


def test_check_with_nothing_to_check_says_so(tmp_path):
    from convlint.analyzers.report.findings import CheckReport

    assert "nothing to check" in to_text(CheckReport(()))
    r = CheckReport((sample(),))
    assert "nothing to check" not in to_text(r)


def test_trace_header_names_the_converter_call_s_line_and_hints_at_diff_repair():
    from convlint.analyzers.report.findings import ScriptReport

    f = Finding("CL201", "error", "parameters", "int8", repair=Repair("patch-weights", "copy"))
    conv = ConversionReport(
        ModelRef("s.keras", "keras"),
        ModelRef("t.tflite", "tflite"),
        {},
        "divergent",
        {},
        (f,),
        {"call_site": {"line": 16}, "call_line": 14, "call": "from_keras_model"},
    )
    t = to_text(ScriptReport("c.py", "faulty", (), kind="trace", conversions=(conv,)))
    assert "conversion at line 14 (from_keras_model" in t
    assert "not verified: convlint diff SOURCE TARGET --repair writes and verifies it" in t
    # the twin with no static converter call known: the recorded call site
    twin = ConversionReport(
        None, None, {}, "equivalent", {}, (), {"call_site": {"line": 16}, "call": "x"}
    )
    assert "conversion at line 16 (x" in to_text(ScriptReport("c.py", "clean", (), kind="trace",
                                                              conversions=(twin,)))
