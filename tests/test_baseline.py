"""``convlint check`` for model zoos: baselines (round trip, regressions, improvements, pairs that
already failed), pairs by glob pattern, ``--changed-since`` in a git repository, and the clear
errors of a bad baseline or ref. Small ONNX pairs built here, checked without TVM."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from convlint.analyzers import baseline as B
from convlint.analyzers import config as C
from convlint.analyzers.errors import ConvlintError

PATTERN = ("pairs = [{source = 'zoo/*/model.onnx', target = '{dir}/conv.onnx'}]\n"
           "cache-dir = '.cache'\n")


def _model(path: Path, w1_delta: float = 0.0, w2_delta: float = 0.0) -> None:
    """x -> fc1 (MatMul) -> relu -> fc2 (MatMul): the same random weights unless a delta is
    added to the first row of fc1's or fc2's weights (a target with a changed weight)."""
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((8, 16)).astype(np.float32)
    w2 = rng.standard_normal((16, 10)).astype(np.float32)
    w1[0] += w1_delta
    w2[0] += w2_delta
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
         helper.make_node("Relu", ["h"], ["r"], name="relu1"),
         helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")], "net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(m, str(path))


@pytest.fixture
def zoo(tmp_path: Path) -> Path:
    """zoo/{a,b,c}: a and c convert cleanly, b's target has a changed fc1 weight; and the
    faulty and clean targets to swap in (beside the zoo, not matched by the pattern)."""
    for d in "abc":
        _model(tmp_path / "zoo" / d / "model.onnx")
    _model(tmp_path / "zoo" / "a" / "conv.onnx")
    _model(tmp_path / "zoo" / "b" / "conv.onnx", w1_delta=1.0)
    _model(tmp_path / "zoo" / "c" / "conv.onnx")
    _model(tmp_path / "spare" / "clean.onnx")
    _model(tmp_path / "spare" / "fc1.onnx", w1_delta=1.0)
    _model(tmp_path / "spare" / "fc2.onnx", w2_delta=1.0)
    (tmp_path / "convlint.toml").write_text(PATTERN)
    return tmp_path


def _check(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "convlint", "check", "--no-tvm", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def _json(cwd: Path, *args: str) -> tuple[int, dict]:
    p = _check(cwd, "--format", "json", *args)
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    return p.returncode, json.loads(p.stdout)


def _pairs(doc: dict, key: str) -> list:
    return [(i["pair"], i["change"]) for i in doc["baseline"][key]]


A, BB, CC = (f"zoo/{d}/model.onnx -> zoo/{d}/conv.onnx" for d in "abc")


def test_round_trip_is_unchanged_and_byte_stable(zoo):
    p = _check(zoo, "--baseline", "base.json", "--update-baseline")
    assert p.returncode == 1 and "baseline written to base.json" in p.stdout, p.stdout + p.stderr
    text = (zoo / "base.json").read_text()
    doc = json.loads(text)
    assert list(doc["pairs"]) == [A, BB, CC]
    assert doc["pairs"][BB]["classification"] == "divergent"
    assert doc["pairs"][BB]["signature"] == {"rule": "CL204", "stage": "parameters", "layer": "fc1"}
    assert doc["pairs"][A] == {"classification": "equivalent", "max_abs": 0.0, "signature": None,
                               "top1_agreement": 1.0}
    assert len(text.splitlines()) == 3 + 5  # one line per pair: a committed file diffs by pair
    code, out = _json(zoo, "--baseline", "base.json")
    assert code == 0  # b already diverged, for the same reason: not a regression
    assert out["verdict"] == "clean"
    assert _pairs(out, "unchanged") == [(A, "same"), (BB, "same"), (CC, "same")]
    assert out["baseline"]["regressions"] == out["baseline"]["improvements"] == []
    assert _check(zoo, "--baseline", "base.json", "--update-baseline").returncode == 0
    assert (zoo / "base.json").read_text() == text


def test_an_injected_regression_is_the_only_one_reported(zoo):
    _check(zoo, "--baseline", "base.json", "--update-baseline")
    shutil.copy(zoo / "spare" / "fc1.onnx", zoo / "zoo" / "a" / "conv.onnx")
    code, out = _json(zoo, "--baseline", "base.json")
    assert code == 1 and out["verdict"] == "issues"
    assert _pairs(out, "regressions") == [(A, "worse")]
    assert out["baseline"]["regressions"][0]["now"]["signature"]["layer"] == "fc1"
    assert _pairs(out, "improvements") == []
    text = _check(zoo, "--baseline", "base.json").stdout
    assert "1 regression, 0 improvements, 2 unchanged" in text
    assert f"regression: {A}: equivalent -> divergent (CL204 parameters [fc1])" in text


def test_an_improvement_and_a_failure_that_changed_its_reason(zoo):
    _check(zoo, "--baseline", "base.json", "--update-baseline")
    shutil.copy(zoo / "spare" / "clean.onnx", zoo / "zoo" / "b" / "conv.onnx")
    code, out = _json(zoo, "--baseline", "base.json")
    assert code == 0 and _pairs(out, "improvements") == [(BB, "better")]
    # still divergent, now at fc2
    shutil.copy(zoo / "spare" / "fc2.onnx", zoo / "zoo" / "b" / "conv.onnx")
    code, out = _json(zoo, "--baseline", "base.json")
    assert code == 1 and _pairs(out, "regressions") == [(BB, "signature")]
    assert out["baseline"]["regressions"][0]["now"]["signature"]["layer"] == "fc2"


def test_glob_patterns_expand_to_sorted_pairs_and_a_missing_target_is_one_finding(zoo):
    (zoo / "zoo" / "b" / "conv.onnx").unlink()
    _model(zoo / "zoo" / "0" / "model.onnx")
    shutil.copy(zoo / "spare" / "clean.onnx", zoo / "zoo" / "0" / "conv.onnx")
    code, out = _json(zoo)
    assert code == 2  # one pair could not be analysed; the others were checked
    convs = [r for r in out["reports"] if r["kind"] == "conversion"]
    assert [Path(r["target"]["path"]).parent.name for r in convs] == ["0", "a", "b", "c"]
    assert [r["verdict"] for r in convs] == ["equivalent", "equivalent", "error", "equivalent"]
    (f,) = convs[2]["findings"]
    assert f["rule"] == "CL001" and "no target" in f["message"]
    assert "zoo/*/model.onnx" in f["message"]


def test_pattern_placeholders_fill_target_inputs_and_name(tmp_path):
    for d in ("x", "y"):
        (tmp_path / "m" / d).mkdir(parents=True)
        (tmp_path / "m" / d / "net.keras").write_bytes(b"")
    cfg = C.parse({"pairs": [{"source": "m/*/net.keras", "target": "out/{stem}-{name}.tflite",
                              "inputs": "{dir}/x.npz", "name": "zoo {dir}"}]},
                  str(tmp_path / "convlint.toml"))
    assert [(Path(p.target).relative_to(tmp_path).as_posix(), p.name) for p in cfg.pairs] == [
        ("out/net-net.keras.tflite", "zoo m/x"), ("out/net-net.keras.tflite", "zoo m/y")]
    assert Path(cfg.pairs[1].inputs).relative_to(tmp_path).as_posix() == "m/y/x.npz"


@pytest.mark.parametrize("pair, key, words", [
    ({"source": "m/*/net.keras", "target": "{folder}/net.tflite"}, "pairs[0].target", "{folder}"),
    ({"source": "m/*/net.keras", "target": "{dir:>4}/n.tflite"}, "pairs[0].target", "placeholder"),
    ({"source": "m/*/net.keras", "target": "{dir/n.tflite"}, "pairs[0].target", "template"),
    ({"source": "m/*/net.keras", "target": "same.tflite"}, "pairs[0].target", "{dir}"),
    ({"source": "none/*.keras", "target": "{dir}/n.tflite"}, "pairs[0].source", "matches no file"),
    ({"source": "m/x/net.keras", "target": "{dir}/n.tflite"}, "pairs[0].target", "glob source"),
    ({"source": "m/*/net.keras", "target": "{dir}/n", "name": 3}, "pairs[0].name", "string"),
])
def test_pattern_errors_name_the_key(tmp_path, pair, key, words):
    (tmp_path / "m" / "x").mkdir(parents=True)
    (tmp_path / "m" / "x" / "net.keras").write_bytes(b"")
    with pytest.raises(ConvlintError) as e:
        C.parse({"pairs": [pair]}, str(tmp_path / "convlint.toml"))
    msg = e.value.message
    assert key in msg and words in msg and "convlint.toml" in msg


def _git(cwd: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@e", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@e")
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env=env)


def test_changed_since_checks_only_changed_pairs_and_the_rest_count_as_unchanged(zoo):
    (zoo / ".gitignore").write_text(".cache/\n")
    _check(zoo, "--baseline", "base.json", "--update-baseline")
    _git(zoo, "init", "-q", "-b", "main")
    _git(zoo, "add", "-A")
    _git(zoo, "commit", "-qm", "zoo")
    shutil.copy(zoo / "spare" / "fc1.onnx", zoo / "zoo" / "c" / "conv.onnx")  # changed, tracked
    code, out = _json(zoo, "--changed-since", "main", "--baseline", "base.json")
    assert code == 1
    convs = [r for r in out["reports"] if r["kind"] == "conversion"]
    assert [Path(r["target"]["path"]).parent.name for r in convs] == ["c"]
    assert [s["pair"] for s in out["skipped"]] == [A, BB]
    assert _pairs(out, "regressions") == [(CC, "worse")]
    assert _pairs(out, "unchanged") == [(A, "skipped"), (BB, "skipped")]
    _git(zoo, "checkout", "--", "zoo/c/conv.onnx")
    _model(zoo / "zoo" / "d" / "model.onnx")  # a new, untracked pair
    shutil.copy(zoo / "spare" / "clean.onnx", zoo / "zoo" / "d" / "conv.onnx")
    code, out = _json(zoo, "--changed-since", "main")
    assert code == 0 and len(out["skipped"]) == 3
    assert [r["target"]["path"] for r in out["reports"] if r["kind"] == "conversion"] == [
        str(zoo / "zoo" / "d" / "conv.onnx")]


@pytest.mark.parametrize("content, words", [
    (None, "no such file"),
    ("{", "not valid JSON"),
    ('{"pairs": {}}', '"convlint-baseline": 1'),
    ('{"convlint-baseline": 1, "pairs": {"a -> b": {"classification": "fine"}}}', "classification"),
])
def test_a_missing_or_malformed_baseline_is_a_clear_error(zoo, content, words):
    if content is not None:
        (zoo / "base.json").write_text(content)
    code, out = _json(zoo, "--baseline", "base.json")
    assert code == 2 and out["verdict"] == "error"
    (f,) = out["reports"][0]["findings"]
    assert "base.json" in f["message"] and words in f["message"] and f["rule"] == "CL001"


def test_bad_refs_and_outputs_are_clear_errors(zoo):
    p = _check(zoo, "--changed-since", "main")
    assert p.returncode == 2 and "not in a git repository" in p.stderr
    assert "Traceback" not in p.stderr
    _git(zoo, "init", "-q", "-b", "main")
    p = _check(zoo, "--changed-since", "no-such-ref")
    assert p.returncode == 2 and "unknown git ref 'no-such-ref'" in p.stderr
    config = (zoo / "convlint.toml").read_text()
    p = _check(zoo, "--baseline", "convlint.toml", "--update-baseline")
    assert p.returncode == 2 and "refusing to overwrite" in p.stderr
    assert (zoo / "convlint.toml").read_text() == config
    model = (zoo / "zoo" / "a" / "conv.onnx").read_bytes()  # nor over a pair's model
    p = _check(zoo, "--baseline", "zoo/a/conv.onnx", "--update-baseline")
    assert p.returncode == 2 and "refusing to overwrite" in p.stderr
    assert (zoo / "zoo" / "a" / "conv.onnx").read_bytes() == model
    p = _check(zoo, "--update-baseline")
    assert p.returncode == 2 and "needs --baseline" in p.stderr


def test_compare_new_and_removed_pairs():
    ok = {"classification": "equivalent", "signature": None}
    bad = {"classification": "crash",
           "signature": {"rule": "CL003", "stage": "runtime", "layer": None}}
    out = B.compare({"gone": ok, "same": bad}, {"same": bad, "new ok": ok, "new bad": bad}, [])
    assert [i["pair"] for i in out["regressions"]] == ["new bad"]
    assert [(i["pair"], i["change"]) for i in out["unchanged"]] == [("new ok", "new"),
                                                                     ("same", "same")]
    assert [i["pair"] for i in out["removed"]] == ["gone"]
    kept = B.merged({"kept": ok, "gone": ok}, {"x": bad}, ["kept", "never"])
    assert kept == {"kept": ok, "x": bad}


def test_a_pattern_s_num_inputs_reaches_every_pair_and_its_cache_key(zoo):
    (zoo / "convlint.toml").write_text(
        PATTERN.replace("conv.onnx'}", "conv.onnx', num-inputs = 3}")
    )
    code, out = _json(zoo)
    convs = [r for r in out["reports"] if r["kind"] == "conversion"]
    assert code == 1 and [r["inputs"]["count"] for r in convs] == [3, 3, 3]
    (zoo / "convlint.toml").write_text(PATTERN)  # the default again: re-checked, not served stale
    code, out = _json(zoo)
    assert [r["inputs"]["count"] for r in out["reports"] if r["kind"] == "conversion"] == [32] * 3


@pytest.mark.parametrize("value", ["0", "'8'", "2.5", "true"])
def test_a_bad_num_inputs_names_the_key(tmp_path, value):
    (tmp_path / "convlint.toml").write_text(
        f"pairs = [{{source = 'a.onnx', target = 'b.onnx', num-inputs = {value}}}]\n")
    with pytest.raises(ConvlintError) as e:
        C.load(str(tmp_path / "convlint.toml"))
    assert "pairs[0].num-inputs" in e.value.message and "whole number" in e.value.message
