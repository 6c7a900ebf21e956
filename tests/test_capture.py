"""Named, serializable run results (analyzers/differential/runs.py): the check's runs by name,
saved and read back as npz + JSON (no pickle), and localization replayed from a capture that
``convlint diff --save-capture`` wrote, without the models."""

import json

import numpy as np
import pytest

from conftest import MODELS, run_cli
from convlint.analyzers import app
from convlint.analyzers.differential.runs import RUN_NAMES, RunResults, load_struct
from convlint.analyzers.errors import ConvlintError


def test_run_results_round_trip(tmp_path):
    r = RunResults(meta={"layer_rtol": 1e-4, "route": None})
    r.add("source/native", [[np.ones((1, 3), np.float32), np.arange(2)]], ["probs", "idx"])
    r.add("target/native", [{"probs": np.zeros((1, 3), np.float32)}])
    r.inputs = {"source": [{"x": np.full((1, 4), 0.5, np.float32)}]}
    r.save(tmp_path / "runs.npz")
    back = RunResults.load(tmp_path / "runs.npz")
    assert set(back.runs) == {"source/native", "target/native"} <= set(RUN_NAMES)
    assert list(back.runs["source/native"][0]) == ["probs", "idx"]
    np.testing.assert_array_equal(back.outputs("source/native")[0][1], np.arange(2))
    assert back.outputs("source/tvm") is None
    assert back.inputs["source"][0]["x"].dtype == np.float32
    assert back.meta == {"layer_rtol": 1e-4, "route": None}
    with pytest.raises(ValueError):
        r.add("source/onnxruntime", [])


def test_a_foreign_or_pickled_file_is_refused_clearly(tmp_path):
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(ConvlintError, match="not one convlint wrote"):
        load_struct(tmp_path / "plain.npz")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ConvlintError, match="cannot read"):
        load_struct(tmp_path / "obj.npy")
    RunResults().save(tmp_path / "runs.npz")
    with pytest.raises(ConvlintError, match="no localization capture"):
        app.localize_saved(str(tmp_path / "runs.npz"))


def _saved(tmp_path, target):
    cap = tmp_path / "capture.npz"
    report = app.diff(
        app.DiffRequest(
            str(MODELS / "resnet.keras"),
            str(MODELS / target),
            num_inputs=4,
            use_tvm=False,
            save_capture=str(cap),
        )
    )
    return report, cap


def test_a_saved_capture_localizes_without_the_models(tmp_path):
    report, cap = _saved(tmp_path, "resnet.tf2onnx.tampered.onnx")
    blamed = {f.layer for f in report.findings if f.rule == "CL204"}
    assert blamed
    loc = app.localize_saved(str(cap))  # nothing but the file
    assert {f.layer for f in loc.findings if f.rule == "CL204"} == blamed
    from convlint.analyzers.differential.runs import load_capture
    from convlint.analyzers.localize.stages import Capture

    _, runs = load_capture(cap, Capture)
    assert {"source/native", "target/native"} <= set(runs.runs)
    assert len(runs.inputs["source"]) == 4


def test_a_clean_pairs_saved_capture_localizes_nothing(tmp_path):
    report, cap = _saved(tmp_path, "resnet.tf2onnx.onnx")
    assert report.verdict == "equivalent"
    loc = app.localize_saved(str(cap))
    assert not [f for f in loc.findings if f.severity == "error"]


def test_save_capture_never_writes_over_a_model():
    p = run_cli(
        "diff",
        str(MODELS / "resnet.keras"),
        str(MODELS / "resnet.tf2onnx.onnx"),
        "--no-tvm",
        "--save-capture",
        str(MODELS / "resnet.tf2onnx.onnx"),
        "--format",
        "json",
    )
    assert p.returncode == 2
    rep = json.loads(p.stdout)
    assert rep["verdict"] == "error" and "--save-capture" in rep["findings"][0]["message"]
