"""``convlint check --executor ray``: a real Ray head on 127.0.0.1 checks a project of pairs and
gives the reports the local process pool gives; a worker that dies mid-task is retried and the
retry is recorded; a pair that keeps killing its worker is a CL014 crash while the others are
checked; no pair is lost or reported twice. Faults come from tests/pair_hooks.py, through each
pair's runtime-env (which also shows the runtime-env reaches Ray)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import MODELS

HERE = Path(__file__).resolve().parent
PAIRS = [
    ("mobilenet.tf2onnx.onnx", "mobilenet.tflite2onnx.onnx"),
    ("mobilenet.tf2onnx.onnx", "mobilenet.tf2onnx.tampered.onnx"),
    ("resnet.tf2onnx.onnx", "resnet.tflite2onnx.onnx"),
]
# a head of `ray start` uses token authentication (Ray >= 2.5x): its clients say so too
HOOKS = {
    "CONVLINT_WORKER_PLUGINS": "pair_hooks",
    "RAY_AUTH_MODE": "token",
    "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def head():
    """A Ray head on 127.0.0.1 (2 CPUs), stopped with its processes at the end."""
    pytest.importorskip("ray")
    port = _free_port()
    ray = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [
            str(ray),
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--num-cpus",
            "2",
            "--include-dashboard",
            "false",
            "--disable-usage-stats",
        ],
        env=dict(os.environ, **HOOKS),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.5)
    else:
        proc.terminate()
        pytest.fail("the Ray head did not start")
    time.sleep(3)  # the raylet comes up after the GCS port opens
    yield f"127.0.0.1:{port}"
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)


def _project(tmp_path: Path, envs: list | None = None) -> Path:
    lines = []
    for k, (s, t) in enumerate(PAIRS):
        env = (envs or [None] * len(PAIRS))[k]
        extra = (
            f", runtime-env = {{env_vars = {json.dumps(env)}}}".replace('":', '" =') if env else ""
        )
        lines.append(f"{{source = '{MODELS / s}', target = '{MODELS / t}'{extra}}}")
    (tmp_path / "convlint.toml").write_text(
        "pairs = [" + ",\n  ".join(lines) + "]\ncache-dir = '.cache'\n"
    )
    return tmp_path


def _check(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "convlint", "check", "--no-tvm", "--format", "json", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env=dict(os.environ, RAY_AUTH_MODE="token", **(env or {})),
    )


def _convs(p: subprocess.CompletedProcess) -> list:
    return [r for r in json.loads(p.stdout)["reports"] if r["kind"] == "conversion"]


def _comparable(r):
    """A report without what differs run to run (timings: every ``seconds``) or by executor."""
    if isinstance(r, dict):
        return {k: _comparable(v) for k, v in r.items() if k not in ("executor", "seconds")}
    return [_comparable(v) for v in r] if isinstance(r, list) else r


@pytest.mark.slow
def test_ray_gives_the_local_pool_s_reports_and_caches_them(head, tmp_path):
    proj = _project(tmp_path)
    local = _check(proj, "-j", "2", "--no-cache")
    ray = _check(proj, "--executor", "ray", "--ray-address", head, "-v")
    assert (local.returncode, ray.returncode) == (1, 1), ray.stderr[-2000:]
    lr, rr = _convs(local), _convs(ray)
    assert [r["verdict"] for r in rr] == ["equivalent", "divergent", "equivalent"]
    assert [_comparable(r) for r in rr] == [_comparable(r) for r in lr]
    assert all(r["executor"] == {"name": "ray", "retries": 0} for r in rr)
    assert all("executor" not in r for r in lr)
    assert "as Ray tasks on the Ray cluster at" in ray.stderr
    again = _check(proj, "--executor", "ray", "--ray-address", head, "-v")  # served from the cache
    assert again.stderr.count("unchanged (cached)") == 3 and _convs(again) == rr


@pytest.mark.slow
def test_a_dead_worker_is_retried_and_a_pair_that_keeps_killing_it_is_a_crash(head, tmp_path):
    marker = tmp_path / "aborted-once"
    proj = _project(
        tmp_path,
        [{"CONVLINT_TEST_ABORT_ONCE": str(marker)}, {"CONVLINT_TEST_ABORT_ALWAYS": "1"}, None],
    )
    p = _check(proj, "--executor", "ray", "--ray-address", head, "-v", "--no-cache")
    assert p.returncode == 1, p.stderr[-2000:]
    convs = _convs(p)
    assert [(r["source"]["path"], r["target"]["path"]) for r in convs] == [
        (str(MODELS / s), str(MODELS / t)) for s, t in PAIRS
    ]  # every pair once, in order
    assert marker.exists()
    assert (convs[0]["verdict"], convs[0]["executor"]) == (
        "equivalent",
        {"name": "ray", "retries": 1},
    )
    assert (convs[1]["verdict"], convs[1]["executor"]["retries"]) == ("crash", 1)
    assert [f["rule"] for f in convs[1]["findings"]] == ["CL014"]
    assert (convs[2]["verdict"], convs[2]["executor"]) == (
        "equivalent",
        {"name": "ray", "retries": 0},
    )


def test_without_ray_the_error_names_the_extra(tmp_path):
    fake = tmp_path / "fake"
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('No module named ray (test)')\n")
    proj = _project(tmp_path / "p" if (tmp_path / "p").mkdir() is None else None)
    p = _check(proj, "--executor", "ray", env={"PYTHONPATH": str(fake)})
    assert p.returncode == 2, p.stderr[-2000:]
    f = json.loads(p.stdout)["reports"][0]["findings"][0]
    assert f["rule"] == "CL005" and "convlint[ray]" in f["message"] + json.dumps(f)


def test_a_pair_s_runtime_env_is_read_from_the_config_and_checked(tmp_path):
    from convlint.analyzers import config as C
    from convlint.analyzers.errors import ConvlintError

    env = {"pip": ["tf2onnx==1.16.1"], "env_vars": {"A": "1"}}
    cfg = C.parse(
        {
            "pairs": [
                {"source": "a.onnx", "target": "b.onnx", "runtime-env": env},
                {"source": "a.onnx", "target": "c.onnx"},
            ]
        },
        str(tmp_path / "convlint.toml"),
    )
    assert [p.runtime_env for p in cfg.pairs] == [env, None]
    with pytest.raises(ConvlintError, match=r"pairs\[0\]\.runtime-env"):
        C.parse(
            {"pairs": [{"source": "a.onnx", "target": "b.onnx", "runtime-env": "tf"}]},
            str(tmp_path / "convlint.toml"),
        )
