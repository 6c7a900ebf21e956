"""``convlint check --executor ray``: a real Ray head on 127.0.0.1 checks a project of pairs and
gives the reports the local process pool gives; a worker that dies mid-task is retried and the
retry is recorded; a pair that keeps killing its worker is a CL014 crash while the others are
checked; no pair is lost or reported twice. Faults come from tests/pair_hooks.py, through each
pair's runtime-env (which also shows the runtime-env reaches Ray)."""

from __future__ import annotations

import json
import os
import secrets
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
# the head uses token authentication (Ray >= 2.52; `ray start` in token mode needs a token, and
# ~/.ray/auth_token may not exist): a token of the tests' own, given to the head and its clients
TOKEN = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
HOOKS = {
    "CONVLINT_WORKER_PLUGINS": "pair_hooks",
    **TOKEN,
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
    proc = subprocess.Popen(
        [  # Ray's CLI through this interpreter: a layered venv has no `ray` script of its own
            sys.executable,
            "-m",
            "ray.scripts.scripts",
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
        env=dict(os.environ, **TOKEN, **(env or {})),
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


class _FakeRay:
    """What ray_executor uses of Ray, recorded: ``remote``'s options, the submissions and their
    runtime_env, cancellations, init and shutdown. ``wait`` hands the results back last
    submitted first (so streaming order differs from submission order); ``fail`` maps a pair's
    source to the exceptions its successive tasks raise; ``interrupt_after`` raises Ctrl-C in
    ``wait`` after that many results."""

    def __init__(self, fail=None, interrupt_after=None, refuse=False):
        import types

        class Died(Exception):
            pass

        self.exceptions = types.SimpleNamespace(
            WorkerCrashedError=type("WorkerCrashedError", (Died,), {}),
            NodeDiedError=type("NodeDiedError", (Died,), {}),
            OutOfMemoryError=type("OutOfMemoryError", (Died,), {}),
            AuthenticationError=type("AuthenticationError", (Exception,), {}),
        )
        self.fail, self.interrupt_after = fail or {}, interrupt_after
        self.options, self.submitted, self.cancelled, self.events = {}, [], [], []
        self.returned, self.refuse = 0, refuse

    def is_initialized(self):
        return False

    def init(self, **kw):
        self.events.append(("init", kw))
        if self.refuse:
            raise self.exceptions.AuthenticationError("no authentication token was found")

    def shutdown(self):
        self.events.append(("shutdown",))

    def remote(self, **options):
        self.options = options
        fake = self

        class Remote:
            def __init__(self, env=None):
                self.env = env

            def options(self, runtime_env=None):
                return Remote(runtime_env)

            def remote(self, task, pair, opts):
                ref = ("ref", len(fake.submitted))
                fake.submitted.append((ref, pair.source, self.env, task, pair, opts))
                return ref

        return lambda fn: Remote()

    def wait(self, refs, num_returns=1):
        if self.interrupt_after is not None and self.returned >= self.interrupt_after:
            raise KeyboardInterrupt
        self.returned += 1
        return [refs[-1]], refs[:-1]

    def get(self, ref):
        _, source, _, task, pair, opts = self.submitted[ref[1]]
        errors = self.fail.get(source, [])
        if errors:
            raise getattr(self.exceptions, errors.pop(0))()
        return task(pair, opts)

    def cancel(self, ref, force=False):
        self.cancelled.append((ref, force))


def _run_fake(monkeypatch, fake, envs=(None, None, None), jobs=2, done=None, address=None):
    import types

    from convlint.analyzers import ray_executor
    from convlint.analyzers.config import Pair

    mod = types.ModuleType("ray")
    for name in ("is_initialized", "init", "shutdown", "remote", "wait", "get", "cancel"):
        setattr(mod, name, getattr(fake, name))
    mod.exceptions = fake.exceptions
    monkeypatch.setitem(sys.modules, "ray", mod)
    monkeypatch.setitem(sys.modules, "ray.exceptions", fake.exceptions)
    pairs = [Pair(f"m{k}.onnx", f"t{k}.onnx", runtime_env=envs[k]) for k in range(3)]
    done, crashed = [] if done is None else done, []
    out = ray_executor.run(
        [(k, p, f"key{k}") for k, p in enumerate(pairs)],
        types.SimpleNamespace(jobs=jobs),
        lambda pair, opts: {"verdict": "equivalent", "source": pair.source},
        lambda d, key, pair: done.append((key, d["executor"])) or d,
        lambda pair: crashed.append(pair.source) or {"verdict": "crash"},
        address,
    )
    return out, done, crashed


def test_ray_tasks_ask_for_one_cpu_memory_one_call_and_get_their_runtime_env(monkeypatch):
    fake = _FakeRay()
    monkeypatch.setenv("CONVLINT_RAY_MEMORY_MB", "512")
    env = {"pip": ["tf2onnx==1.16.1"]}
    out, done, _ = _run_fake(monkeypatch, fake, envs=(None, env, None), jobs=3)
    assert fake.options == {
        "max_calls": 1,
        "num_cpus": 1,
        "memory": 512 * 1024 * 1024,
        "max_retries": 0,
    }
    assert [(s, e) for _, s, e, *_ in fake.submitted] == [
        ("m0.onnx", None),
        ("m1.onnx", env),
        ("m2.onnx", None),
    ]
    # streamed: each result is cached (done) as Ray hands it back, last submitted first here
    assert [k for k, _ in done] == ["key2", "key1", "key0"]
    assert sorted(out) == [0, 1, 2] and all(d["executor"]["retries"] == 0 for d in out.values())
    (init, kw), shutdown = fake.events
    assert init == "init" and kw["_node_ip_address"] == "127.0.0.1" and kw["num_cpus"] == 3
    assert shutdown == ("shutdown",)


def test_ray_retries_a_worker_killed_by_the_memory_monitor_or_a_lost_node(monkeypatch):
    fake = _FakeRay(
        fail={"m0.onnx": ["OutOfMemoryError"], "m1.onnx": ["NodeDiedError", "WorkerCrashedError"]}
    )
    out, done, crashed = _run_fake(monkeypatch, fake)
    assert out[0] == {
        "verdict": "equivalent",
        "source": "m0.onnx",
        "executor": {"name": "ray", "retries": 1},
    }
    assert out[1] == {"verdict": "crash", "executor": {"name": "ray", "retries": 1}}
    assert crashed == ["m1.onnx"] and len(fake.submitted) == 5  # 3 pairs, 2 resubmissions
    assert sorted(k for k, _ in done) == ["key0", "key2"]  # a crash is never cached


def test_ctrl_c_in_a_ray_run_keeps_what_finished_and_cancels_the_rest(monkeypatch):
    fake, done = _FakeRay(interrupt_after=1), []
    with pytest.raises(KeyboardInterrupt):
        _run_fake(monkeypatch, fake, done=done)
    assert [k for k, _ in done] == ["key2"]  # cached before the interrupt: a rerun resumes
    assert fake.cancelled == [(("ref", 0), True), (("ref", 1), True)]
    assert fake.events[-1] == ("shutdown",)


def test_a_cluster_that_refuses_the_token_is_a_clear_error(monkeypatch):
    from convlint.analyzers.errors import ConvlintError

    fake = _FakeRay(refuse=True)
    with pytest.raises(ConvlintError) as e:
        _run_fake(monkeypatch, fake, address="10.0.0.1:6379")
    assert e.value.rule == "CL001" and "cannot connect to the Ray cluster at 10.0.0.1:6379" in str(
        e.value.message
    )
    assert "no authentication token" in e.value.message and "RAY_AUTH_MODE" in e.value.hint
    assert fake.submitted == []
