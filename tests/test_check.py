"""``convlint check`` in CI: configuration (and its errors), select/ignore/severity, model pairs
with the content-hash cache and worker processes, exit codes, and the CI output formats."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from xml.etree import ElementTree as ET

import pytest

from conftest import MODELS, ROOT

SCRIPTS = ROOT / "fixtures" / "scripts"


def _check(cwd, *args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "convlint", "check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, **(env or {})),
    )


@pytest.fixture
def project(tmp_path):
    shutil.copy(SCRIPTS / "tflite_optimize.py", tmp_path)
    shutil.copy(SCRIPTS / "torch_not_eval.py", tmp_path)
    shutil.copy(SCRIPTS / "layout.clean.py", tmp_path)
    return tmp_path


def test_exit_codes(project, tmp_path):
    assert _check(project).returncode == 1
    assert _check(project, "--exit-zero").returncode == 0
    assert _check(project, "layout.clean.py").returncode == 0
    assert _check(project, "missing.py").returncode == 2
    (project / "convlint.toml").write_text("ignore = [\"CL411\", \"CL432\"]\n")
    assert _check(project).returncode == 0  # only the CL431 warning is left


def test_select_ignore_and_severity_from_config_and_flags(project):
    (project / "pyproject.toml").write_text(
        "[project]\nname='x'\n\n[tool.convlint]\nselect = [\"CL43\"]\n"
        '[tool.convlint.severity]\nCL431 = "error"\n'
    )
    doc = json.loads(_check(project, "--format", "json").stdout)
    rules = sorted((f["rule"], f["severity"]) for r in doc["reports"] for f in r["findings"])
    assert rules == [("CL431", "error"), ("CL432", "error")]
    # the flag wins
    doc = json.loads(_check(project, "--format", "json", "--select", "CL41").stdout)
    assert [f["rule"] for r in doc["reports"] for f in r["findings"]] == ["CL411"]


@pytest.mark.parametrize("text, key", [
    ("pairs = [{source = 'a.onnx'}]\n", "pairs[0].target"),
    ("selec = ['CL4']\n", "selec"),
    ("ignore = ['XX1']\n", "ignore"),
    ("[severity]\nCL411 = 'fatal'\n", "severity.CL411"),
    ("pairs = [{source = 'a', target = 'b', atol = -1}]\n", "pairs[0].atol"),
    ("allow-exec = 'yes'\n", "allow-exec"),
    ("this is = not toml\n", "not valid TOML"),
])
def test_config_errors_name_the_key_and_the_file(project, text, key):
    (project / "convlint.toml").write_text(text)
    p = _check(project, "--format", "json")
    assert p.returncode == 2
    doc = json.loads(p.stdout)
    assert doc["kind"] == "check" and doc["verdict"] == "error"
    msg = doc["reports"][0]["findings"][0]["message"]
    assert key in msg and "convlint.toml" in msg


@pytest.mark.slow
def test_pairs_run_in_workers_and_an_unchanged_rerun_reads_the_cache(project):
    (project / "convlint.toml").write_text(
        f"pairs = [{{source = '{MODELS / 'mobilenet.keras'}', target = "
        f"'{MODELS / 'mobilenet.tflite'}'}},\n         {{source = '{MODELS / 'resnet.pt2'}', "
        f"target = '{MODELS / 'resnet.torch.tampered.onnx'}'}}]\ncache-dir = '.cache'\n"
    )
    first = _check(project, "--format", "json", "--jobs", "2", "--no-tvm", "-v")
    assert first.returncode == 1, first.stderr[-2000:]
    d1 = json.loads(first.stdout)
    convs = [r for r in d1["reports"] if r["kind"] == "conversion"]
    assert [r["verdict"] for r in convs] == ["equivalent", "divergent"]
    assert any(f["rule"] == "CL204" for f in convs[1]["findings"])
    second = _check(project, "--format", "json", "--jobs", "2", "--no-tvm", "-v")
    assert "unchanged (cached)" in second.stderr
    d2 = json.loads(second.stdout)
    assert [r["verdict"] for r in d2["reports"]] == [r["verdict"] for r in d1["reports"]]
    assert (project / ".cache" / "check").is_dir()


def test_github_annotations(project):
    out = _check(project, "--format", "github").stdout.splitlines()
    assert any(
        line.startswith("::error file=tflite_optimize.py,line=15,col=1") and "title=CL411" in line
        for line in out
    ), out
    assert any(line.startswith("::warning ") and "CL431" in line for line in out)


def test_junit_parses(project):
    root = ET.fromstring(_check(project, "--format", "junit").stdout.split("?>", 1)[1])
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 3 and suite.get("failures") == "2"
    assert {c.get("name") for c in cases if c.find("failure") is not None} == {
        "tflite_optimize.py",
        "torch_not_eval.py",
    }


def test_sarif_structure(project):
    doc = json.loads(_check(project, "--format", "sarif").stdout)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    ids = [r["id"] for r in run["tool"]["driver"]["rules"]]
    for res in run["results"]:
        assert ids[res["ruleIndex"]] == res["ruleId"] and res["level"] in (
            "error",
            "warning",
            "note",
        )
        region = res["locations"][0]["physicalLocation"]["region"]
        assert region["startLine"] >= 1 and region["startColumn"] >= 1
    fix = next(r for r in run["results"] if r["ruleId"] == "CL411")["fixes"][0]
    rep = fix["artifactChanges"][0]["replacements"][0]
    assert rep["deletedRegion"]["startLine"] == 15 and rep["insertedContent"]["text"] == ""


def test_argument_errors_keep_each_command_s_document_shape(tmp_path):
    doc = json.loads(_check(tmp_path, "--jobs", "0", "--format", "json").stdout)
    assert (
        doc["kind"] == "check"
        and doc["verdict"] == "error"
        and doc["reports"][0]["findings"][0]["rule"] == "CL001"
    )
    p = subprocess.run(
        [sys.executable, "-m", "convlint", "trace", "x.py", "--timeout", "-1", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    doc = json.loads(p.stdout)
    assert p.returncode == 2 and doc["kind"] == "trace" and doc["verdict"] == "error"


def test_report_never_overwrites_an_input(project):
    before = (project / "tflite_optimize.py").read_text()
    p = _check(project, "tflite_optimize.py", "--output-file", "tflite_optimize.py")
    assert p.returncode == 2 and (project / "tflite_optimize.py").read_text() == before


def test_cache_keys_change_with_the_engine_source(tmp_path, monkeypatch):
    """A report or a compiled TVM module made by another convlint (same version number, other
    engine source: e.g. a fixed TVM import route) is never reused."""
    from convlint.analyzers import cache, project
    from convlint.analyzers.config import Config, Pair
    from convlint.analyzers.models import tvm_runner

    (tmp_path / "a.onnx").write_bytes(b"a")
    (tmp_path / "b.onnx").write_bytes(b"b")
    pair = Pair(str(tmp_path / "a.onnx"), str(tmp_path / "b.onnx"))
    opts = project.CheckOptions(paths=[], config=Config())
    fp = cache.engine_fingerprint()
    assert len(fp) == 16 and fp == cache.engine_fingerprint()
    keys, names = {project.cache_key(pair, opts)}, set()
    for fingerprint in (fp, "another engine"):
        monkeypatch.setattr(project, "engine_fingerprint", lambda f=fingerprint: f)
        monkeypatch.setattr(cache, "engine_fingerprint", lambda f=fingerprint: f)
        keys.add(project.cache_key(pair, opts))
        names.add(tvm_runner.cache_name("same model|same shapes|OnnxRunner"))
    assert len(keys) == 2 and len(names) == 2


def test_a_corrupt_cache_entry_is_a_miss_and_is_rebuilt(tmp_path):
    from convlint.analyzers.project import cache_read, cache_write

    good = {"kind": "conversion", "verdict": "equivalent", "findings": []}
    for bad in (b"", b"{not json", b"\xff\xfe", b'["a list"]', b'{"kind": "conversion"}'):
        (tmp_path / "k.json").write_bytes(bad)
        assert cache_read(tmp_path, "k") is None
        cache_write(tmp_path, "k", good)
        assert cache_read(tmp_path, "k") == good
    cache_write(tmp_path, "e", {"kind": "conversion", "verdict": "error"})  # never cached: retried
    assert cache_read(tmp_path, "e") is None and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_a_native_crash_checking_one_pair_is_a_finding_and_the_other_pairs_are_checked(
    project, tmp_path
):
    import shutil

    crash_dir = tmp_path / "abort_here"
    crash_dir.mkdir()
    shutil.copy(MODELS / "mobilenet.keras", crash_dir / "mobilenet.keras")
    (project / "convlint.toml").write_text(
        f"pairs = [{{source = '{crash_dir / 'mobilenet.keras'}', target = "
        f"'{MODELS / 'mobilenet.tflite'}'}},\n         {{source = "
        f"'{MODELS / 'mobilenet.keras'}', target = '{MODELS / 'mobilenet.tflite'}'}}]\ncache-dir "
        f"= '.cache'\n"
    )
    from lsp_helpers import worker_hooks_env

    env = {**worker_hooks_env(), "CONVLINT_TEST_ABORT_ON": "abort_here"}
    p = _check(project, "--format", "json", "--no-tvm", env=env)
    assert p.returncode == 1, p.stderr[-2000:]
    convs = [r for r in json.loads(p.stdout)["reports"] if r["kind"] == "conversion"]
    assert [r["verdict"] for r in convs] == ["crash", "equivalent"]
    f = convs[0]["findings"][0]
    assert f["rule"] == "CL014" and "died" in f["message"] and "abort_here" in f["message"]
    # a crash is never cached
    again = _check(project, "--format", "json", "--no-tvm", "-v", env=env)
    assert "pair " in again.stderr and [r["verdict"] for r in json.loads(again.stdout)["reports"]
                                         if r["kind"] == "conversion"] == ["crash", "equivalent"]


# -- training scripts (opt-in) -------------------------------------------------------------------
def _training_project(tmp_path):
    sys.path.insert(0, str(ROOT / "bench" / "training"))
    import programs

    case = next(c for c in programs.cases() if c.name == "t04_lr_too_high")
    bad, good = programs.sources(case)
    (tmp_path / "train_bad.py").write_text(bad)
    (tmp_path / "train_good.py").write_text(good)
    # uses torch, trains nothing
    (tmp_path / "notes.py").write_text("import torch\nprint(torch.ones(1))\n")
    return case


def test_training_checks_are_opt_in_and_need_consent(tmp_path):
    _training_project(tmp_path)
    p = _check(tmp_path, "--format", "json")
    assert p.returncode == 0 and all(
        r["kind"] != "training" for r in json.loads(p.stdout)["reports"]
    )
    p = _check(tmp_path, "--train", "--format", "json")
    assert p.returncode == 2
    msg = json.loads(p.stdout)["reports"][0]["findings"][0]["message"]
    assert "consent" in msg and "--allow-exec" in msg
    # opting in from the config needs consent too
    (tmp_path / "convlint.toml").write_text("train = true\n")
    assert _check(tmp_path).returncode == 2
    (tmp_path / "convlint.toml").write_text("train = 'yes'\n")
    assert "train: expected true or false" in _check(tmp_path).stderr
    (tmp_path / "convlint.toml").write_text("train-scripts = ['missing.py']\n")
    p = _check(tmp_path, "--train", "--allow-exec")
    assert p.returncode == 2 and "missing.py" in p.stderr


@pytest.mark.slow
def test_check_runs_the_training_scripts_finds_the_fault_passes_the_twin_and_caches(tmp_path):
    case = _training_project(tmp_path)
    (tmp_path / "convlint.toml").write_text("cache-dir = '.cache'\n")
    p = _check(tmp_path, "--train", "--allow-exec", "--format", "json", "-j", "2")
    assert p.returncode == 1, p.stderr[-2000:]
    reps = {r["script"]: r for r in json.loads(p.stdout)["reports"] if r["kind"] == "training"}
    # found by what they call; notes.py trains nothing
    assert set(reps) == {"train_bad.py", "train_good.py"}
    assert reps["train_bad.py"]["verdict"] == "faulty"
    assert any(f["rule"] in case.rules for f in reps["train_bad.py"]["findings"])
    assert (reps["train_good.py"]["verdict"], reps["train_good.py"]["findings"]) == ("healthy", [])
    junit = _check(tmp_path, "--train", "--allow-exec", "--format", "junit", "-v")
    # the unchanged rerun reads the cache
    assert "training train_bad.py: unchanged (cached)" in junit.stderr
    cases = ET.fromstring(junit.stdout.split("?>", 1)[1]).find("testsuite").findall("testcase")
    assert {c.get("name") for c in cases if c.find("failure") is not None} == {"train_bad.py"}
    # the config names the training scripts (and opts in, with consent)
    (tmp_path / "convlint.toml").write_text(
        "cache-dir = '.cache'\ntrain = true\nallow-exec = true\ntrain-scripts = ['train_good.py']\n"
    )
    p = _check(tmp_path, "--format", "json")
    assert p.returncode == 0 and [r["script"] for r in json.loads(p.stdout)["reports"]] == [
        "train_good.py"
    ]


def test_progress_is_a_bar_on_a_terminal_and_quiet_otherwise(project):
    import pty

    assert _check(project, "--exit-zero").stderr == ""  # not a terminal: nothing but the report
    master, slave = pty.openpty()
    p = subprocess.run(
        [sys.executable, "-m", "convlint", "check", "--exit-zero"],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=slave,
        timeout=300,
        env=dict(os.environ, COLUMNS="120", TERM="xterm"),
    )
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        err += chunk
    os.close(master)
    text = err.decode("utf-8", "replace")
    # the bar, complete
    assert p.returncode == 0 and "3/3" in text and "\u2501" in text, text[-1000:]
    assert "CL411" in p.stdout.decode()  # the report itself still goes to stdout


@pytest.mark.slow
def test_ctrl_c_keeps_the_finished_pairs_and_a_rerun_resumes_from_them(tmp_path):
    """Pairs are cached as they finish: interrupted while the second pair runs, the first pair's
    report is kept, and the rerun reads it instead of checking it again."""
    import signal
    import time

    from lsp_helpers import worker_hooks_env

    fast = (MODELS / "mobilenet.tf2onnx.onnx", MODELS / "mobilenet.tflite2onnx.onnx")
    # "resnet": the hook sleeps
    slow = (MODELS / "resnet.tf2onnx.onnx", MODELS / "resnet.tflite2onnx.onnx")
    (tmp_path / "convlint.toml").write_text(
        f"pairs = [{{source = '{fast[0]}', target = '{fast[1]}'}}, {{source = '{slow[0]}', "
        f"target = '{slow[1]}'}}]\ncache-dir = '.cache'\n"
    )
    env = {
        **os.environ,
        **worker_hooks_env(),
        "CONVLINT_WORKER_PLUGINS": "pair_hooks",
        "CONVLINT_TEST_SLOW_ON": "resnet",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "convlint", "check", "--no-tvm", "--format", "json"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    cache = tmp_path / ".cache" / "check"
    deadline = time.time() + 300
    while time.time() < deadline and not list(cache.glob("*.json")):
        time.sleep(0.5)
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "interrupted" in err, err[-2000:]
    assert len(list(cache.glob("*.json"))) == 1  # the finished pair, and only it
    # no hook: the slow pair runs now
    again = _check(tmp_path, "--no-tvm", "--format", "json", "-v")
    assert again.returncode == 0, again.stderr[-2000:]
    assert (
        again.stderr.count("unchanged (cached)") == 1
        and "mobilenet" in again.stderr.split("unchanged (cached)")[0]
    )
    convs = [r for r in json.loads(again.stdout)["reports"] if r["kind"] == "conversion"]
    assert [(r["source"]["path"], r["verdict"]) for r in convs] == [(str(fast[0]), "equivalent"),
                                                                    (str(slow[0]), "equivalent")]
    assert len(list(cache.glob("*.json"))) == 2
