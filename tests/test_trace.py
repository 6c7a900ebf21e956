"""``convlint trace``: the instrumented run of real conversion scripts, end to end.

Each acceptance script (Keras -> TFLite with Optimize.DEFAULT, Keras -> ONNX through tf2onnx,
torch -> ONNX) is traced: the conversion is captured and checked, the findings land on the
converter call, and the static rule's rewrite is verified by tracing the rewritten script. Each
has a clean twin that must come back clean. The user's files are never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

SCRIPTS = ROOT / "fixtures" / "scripts"
pytestmark = pytest.mark.slow

# script -> (static rule, its line, the converter call's line, the converted file)
CASES = {
    "tflite_optimize.py": ("CL411", 15, 16, "model.tflite"),
    "tf2onnx_opset.py": ("CL420", 14, 14, "model.onnx"),
    "torch_training.py": ("CL430", 17, 16, "model.onnx"),
}


# script -> the line of its converter call (the static rules' converter_calls)
CONVERTER_LINES = {"tflite_optimize.py": 14, "tf2onnx_opset.py": 14, "torch_training.py": 16}


def _trace(script: Path, cwd: Path, *extra: str):
    p = run_cli(
        "trace",
        str(script),
        "--allow-exec",
        "--cwd",
        str(cwd),
        "--no-tvm",
        "--format",
        "json",
        *extra,
    )
    return p, json.loads(p.stdout)


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(CASES))
def test_trace_finds_the_fault_on_the_call_and_verifies_the_rewrite(name, tmp_path):
    rule, line, call_line, output = CASES[name]
    script = tmp_path / name
    shutil.copy(SCRIPTS / name, script)
    p, doc = _trace(script, tmp_path)
    assert p.returncode == 1, p.stderr[-2000:]
    assert doc["kind"] == "trace" and doc["verdict"] == "faulty"
    (conv,) = doc["conversions"]
    assert conv["verdict"] in ("divergent", "crash")
    assert conv["call_site"]["line"] == call_line and conv["output"].endswith(output)
    # the header names the line of the converter call itself (from_keras_model on line 14, not
    # the convert() on line 16 that the run recorded)
    assert conv["call_line"] == CONVERTER_LINES[name]
    errors = [f for f in conv["findings"] if f["severity"] == "error"]
    assert errors and all(f["location"]["line"] == call_line for f in errors)
    assert all(f["location"]["file"] == str(script) for f in errors)
    (static,) = [f for f in doc["findings"] if f["rule"] == rule]
    assert static["location"]["line"] == line
    rep = static["repair"]
    assert rep["kind"] == "rewrite-call" and rep["verified"] is True, rep
    assert rep["metrics_after"]["verdict"] == "equivalent"
    # one state: the conversion's errors carry the rewrite's repair, verified as it is
    assert all(
        f["repair"]["kind"] == "rewrite-call" and f["repair"]["verified"] is True for f in errors
    )
    # the script's outputs went to the cache, not beside it (--keep-outputs keeps them there)
    assert sorted(x.name for x in tmp_path.iterdir()) == [name]
    assert Path(conv["target"]["path"]).is_file()


def test_keep_outputs_lets_the_script_write_where_it_says(tmp_path):
    name, output = "torch_training.py", "model.onnx"
    script = tmp_path / name
    shutil.copy(SCRIPTS / name, script)
    p, doc = _trace(script, tmp_path, "--keep-outputs")
    assert p.returncode == 1, p.stderr[-2000:]
    (conv,) = doc["conversions"]
    # the verification run wrote into its own folder: the user's output is the faulty model the
    # first run produced, never the rewritten one
    assert _sha(tmp_path / output) == _sha(Path(conv["target"]["path"]))
    assert sorted(x.name for x in tmp_path.iterdir()) == sorted([name, output])


def test_a_script_that_converts_nothing_is_not_a_silent_pass(tmp_path):
    s = tmp_path / "noconv.py"
    s.write_text("x = 1\n")
    p = run_cli("trace", str(s), "--allow-exec", "--cwd", str(tmp_path), "--no-tvm")
    assert p.returncode == 0 and "ISSUES" in p.stdout and "CL462 [warning]" in p.stdout, p.stdout
    p, doc = _trace(s, tmp_path)
    (f,) = doc["findings"]
    assert doc["verdict"] == "issues" and f["rule"] == "CL462" and f["severity"] == "warning"


@pytest.mark.parametrize("name", sorted(CASES))
def test_clean_twin_traces_clean(name, tmp_path):
    twin = name.replace(".py", ".clean.py")
    script = tmp_path / twin
    shutil.copy(SCRIPTS / twin, script)
    p, doc = _trace(script, tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    assert doc["verdict"] == "clean" and doc["findings"] == []
    (conv,) = doc["conversions"]
    assert conv["verdict"] == "equivalent", conv["findings"]


def test_written_rewrite_traces_clean(tmp_path):
    script = tmp_path / "torch_training.py"
    shutil.copy(SCRIPTS / "torch_training.py", script)
    fixed = tmp_path / "fixed" / "torch_training.py"
    p, doc = _trace(script, tmp_path, "--write-fixed", str(fixed))
    assert p.returncode == 1
    assert "TrainingMode.TRAINING" in script.read_text() and "TrainingMode" not in fixed.read_text()
    p, doc = _trace(fixed, tmp_path)
    assert p.returncode == 0 and doc["verdict"] == "clean", doc


def test_trace_needs_consent(tmp_path):
    p = run_cli("trace", str(SCRIPTS / "torch_training.py"), "--format", "json")
    doc = json.loads(p.stdout)
    assert (
        p.returncode == 2
        and doc["verdict"] == "error"
        and "--allow-exec" in doc["findings"][0]["message"]
    )


def test_script_failure_lands_on_its_line(tmp_path):
    s = tmp_path / "boom.py"
    s.write_text("import os\n\nraise RuntimeError('no input file')\n")
    p, doc = _trace(s, tmp_path)
    assert p.returncode == 1 and doc["verdict"] == "crash"
    f = next(f for f in doc["findings"] if f["rule"] == "CL460")
    assert f["location"]["line"] == 3 and "no input file" in f["message"]
    assert any(f["rule"] == "CL462" for f in doc["findings"])


def test_timeout_stops_the_script(tmp_path):
    s = tmp_path / "slow.py"
    s.write_text("import time\ntime.sleep(60)\n")
    p, doc = _trace(s, tmp_path, "--timeout", "2")
    assert p.returncode == 1 and doc["verdict"] == "crash"
    assert any(f["rule"] == "CL461" for f in doc["findings"])


def test_converter_error_is_a_finding_on_the_call(tmp_path):
    s = tmp_path / "bad_opset.py"
    shutil.copy(SCRIPTS / "torch_opset.py", s)
    s.write_text(s.read_text().replace("opset_version=10", "opset_version=9"))
    p, doc = _trace(s, tmp_path)
    assert p.returncode == 1
    rules = {(f["rule"], f["location"]["line"]) for f in doc["findings"]}
    assert ("CL463", 7) in rules and ("CL420", 7) in rules and ("CL460", 7) in rules


def test_conversion_without_a_savable_source_is_reported_not_checked(tmp_path):
    s = tmp_path / "concrete.py"
    s.write_text(
        "import tensorflow as tf\n\n"
        "@tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])\n"
        "def f(x):\n"
        "    return tf.nn.relu(x) * 2.0\n\n"
        "conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])\n"
        "open('f.tflite', 'wb').write(conv.convert())\n")
    p, doc = _trace(s, tmp_path)
    assert p.returncode == 0, doc
    f = next(f for f in doc["findings"] if f["rule"] == "CL464")
    assert (
        f["severity"] == "warning" and f["location"]["line"] == 8 and "source model" in f["message"]
    )
    assert doc["conversions"] == [] and doc["run"]["conversions"][0]["output"].endswith("f.tflite")


def test_a_binary_script_is_a_clear_error(tmp_path):
    s = tmp_path / "model.py"
    s.write_bytes(b"\x80\x81\xfe\xff" * 16)
    p = run_cli("trace", str(s), "--allow-exec", "--format", "json")
    doc = json.loads(p.stdout)
    assert (
        p.returncode == 2
        and doc["findings"][0]["rule"] == "CL001"
        and "UTF-8" in doc["findings"][0]["message"]
    )
