"""A cancelled check leaves nothing behind: no temporary folder, no half-written file, no script
still running. Cancelling in the language server stops its worker (SIGTERM, then SIGKILL); on
the command line Ctrl-C and SIGTERM (a CI cancel) do the same."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = """import os, sys, time
import torch  # a training script: convlint's probes attach when torch is imported
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (killed, not yet reaped by a container's init) is not running
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _wait_for(cond, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.1)
    return cond()


def _project(tmp_path):
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    script = tmp_path / "train.py"
    script.write_text(SCRIPT.replace("sys.argv[1]", repr(str(tmp_path / "pid"))))
    return tmpdir, script


@pytest.mark.slow
async def test_cancelling_a_server_job_stops_the_script_and_removes_its_temporary_files(tmp_path):
    from convlint.server.lsp.jobs import JobRunner

    tmpdir, script = _project(tmp_path)
    runner = JobRunner(env=dict(os.environ, TMPDIR=str(tmpdir)))
    task = asyncio.create_task(
        runner.submit(
            "train-check", {"script": str(script), "cwd": str(tmp_path), "timeout": 300}, key="t"
        )
    )
    for _ in range(600):
        if (tmp_path / "pid").exists() and (tmp_path / "pid").read_text():
            break
        await asyncio.sleep(0.1)
    pid = int((tmp_path / "pid").read_text())
    assert list(tmpdir.iterdir()), "the job's temporary folder should exist while it runs"
    worker_pid = runner.pid
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(
        _wait_for, lambda: not _alive(pid) and not _alive(worker_pid), 10
    )
    assert list(tmpdir.iterdir()) == []  # removed by the worker on SIGTERM, not left for the OS
    # the server goes on: a new worker runs the next job
    p2 = tmp_path / "ok.py"
    p2.write_text("x = 1\n")
    rep = await runner.submit(
        "train-check", {"script": str(p2), "cwd": str(tmp_path), "timeout": 60}
    )
    assert rep["kind"] == "training" and rep["verdict"] == "error"  # nothing trained, said so
    assert runner.pid not in (None, worker_pid)
    await runner.shutdown()
    assert list(tmpdir.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupting_the_cli_stops_the_script_and_leaves_no_files(tmp_path, sig):
    tmpdir, script = _project(tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "convlint",
            "train-check",
            str(script),
            "--allow-exec",
            "--format",
            "json",
            "--html",
            str(tmp_path / "report.html"),
        ],
        cwd=tmp_path,
        env=dict(os.environ, TMPDIR=str(tmpdir)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(), 120)
    pid = int((tmp_path / "pid").read_text())
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2 and "interrupted" in err, err[-2000:]
    assert _wait_for(lambda: not _alive(pid), 10)
    assert list(tmpdir.iterdir()) == []
    # no report, no partial file
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pid", "tmp", "train.py"]


def test_an_interrupted_write_leaves_neither_the_file_nor_its_temporary(tmp_path):
    from convlint.analyzers.report.io import write_new_file

    class Boom:
        def __len__(self):
            return 1

    target = tmp_path / "repaired.onnx"
    with pytest.raises((KeyboardInterrupt, TypeError)):
        write_new_file(str(target), Boom())  # fails mid-write
    (tmp_path / "x").write_text("")

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    orig = os.replace
    os.replace = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            write_new_file(str(target), b"data")
    finally:
        os.replace = orig
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train-check", "trace"])
def test_scripts_run_under_a_memory_limit(tmp_path, command):
    script = tmp_path / "greedy.py"
    script.write_text("import torch\nblob = bytearray(3 * 1024 ** 3)\nprint(len(blob))\n")
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "convlint",
            command,
            str(script),
            "--allow-exec",
            "--memory-limit",
            "2500",
            "--format",
            "json",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    import json

    doc = json.loads(p.stdout)
    text = json.dumps(doc)
    assert p.returncode in (1, 2) and "MemoryError" in text, text[:2000]
    if command == "train-check":
        assert "--memory-limit" in text


@pytest.mark.slow
def test_a_script_that_prints_without_end_fills_neither_memory_nor_disk(tmp_path):
    from convlint.analyzers.subproc import run_script_process

    script = (
        "import sys\nline = 'x' * 1023 + '\\n'\nfor _ in range(300_000):\n    "
        "sys.stdout.write(line)\nsys.stderr.write('the end\\n')\n"
    )
    before = shutil.disk_usage(tmp_path).used
    run = run_script_process(
        [sys.executable, "-c", script],
        cwd=str(tmp_path),
        env=dict(os.environ),
        timeout=120,
        output_limit=4096,
    )
    assert run.returncode == 0 and not run.timed_out
    assert run.output.endswith("the end\n") and len(run.output) < 4096 + 100
    assert "earlier bytes of output not kept" in run.output
    assert (
        list(tmp_path.iterdir()) == []
        and shutil.disk_usage(tmp_path).used - before < 50 * 1024 * 1024
    )


def test_a_worker_whose_sigterm_was_swallowed_still_exits_after_the_job(tmp_path):
    """Native code can turn the exception SIGTERM raises into another one (numpy's C import does:
    ImportError, leaving numpy broken); the worker must exit rather than serve the next job."""
    import json

    from lsp_helpers import worker_hooks_env

    env = dict(os.environ, **worker_hooks_env())
    proc = subprocess.Popen(
        [sys.executable, "-m", "convlint.server.lsp.worker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert json.loads(proc.stdout.readline())["event"] == "ready"
    proc.stdin.write(
        json.dumps({"id": "1", "kind": "sleep", "params": {"seconds": 30, "swallow": True}}) + "\n"
    )
    proc.stdin.flush()
    assert json.loads(proc.stdout.readline())["event"] == "progress"
    proc.send_signal(signal.SIGTERM)
    msg = json.loads(proc.stdout.readline())
    assert msg["event"] == "failed" and "interrupted import" in msg["message"]
    assert proc.wait(timeout=10) == 143  # gone, with no further job accepted
