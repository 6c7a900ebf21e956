"""``convlint train-check``: run a training script with the probes attached, in a subprocess,
and turn its trace into the training report.

The script runs only with consent (``allow_exec``), in its own process with a wall-clock
timeout, a memory limit (``resource.setrlimit``), no core dumps, and its output read through a
pipe of which only the tail is kept. The trace and every temporary file live in a folder
that is removed afterwards, whatever happens. A notebook runs as its code cells joined
(``scripts/notebook.py``, written to that folder), in its own folder unless ``cwd`` says
otherwise, and its findings are mapped back to cell and line.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from convlint.analyzers import defaults as D
from convlint.analyzers import rules as R
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.report.findings import Finding, Location, ScriptReport
from convlint.analyzers.sandbox.record import read_trace
from convlint.analyzers.scripts import notebook
from convlint.analyzers.subproc import default_memory_mb, require_consent, run_script_process
from convlint.analyzers.training.rules import Thresholds, analyze


@dataclass
class TrainOptions:
    allow_exec: bool = False
    max_epochs: int | None = D.MAX_EPOCHS
    max_steps: int | None = D.MAX_STEPS
    extend_steps: int | None = D.MAX_STEPS_EXTENDED  # an undecided run is watched up to this (the
    # default window only: a --max-steps the user chose is a cap)
    timeout: float = D.SCRIPT_TIMEOUT
    # record every k-th step; None: Keras picks about 120 steps, PyTorch all
    every: int | None = None
    python: str | None = None
    cwd: str | None = None
    args: list = field(default_factory=list)
    memory_mb: int | None = None  # address-space limit (None: the machine's memory; 0: none)
    output_limit: int = 64 * 1024  # bytes of the script's output kept (the tail)
    thresholds: Thresholds = field(default_factory=Thresholds)
    verify_fix: bool = False  # apply each fix to a copy and rerun (training/verify.py)
    verify_budget: float = D.VERIFY_BUDGET  # seconds for all the reruns together
    write_fixed: str | None = None  # write the first verified fixed copy here


def train_check(script: str, opts: TrainOptions, progress: Callable | None = None) -> ScriptReport:
    progress = progress or (lambda m: None)
    require_consent(opts.allow_exec, f"convlint train-check runs {script}, which executes its code")
    p = Path(script)
    if not p.is_file():
        raise ConvlintError(f"{script}: no such file", rule=R.BAD_ARGUMENTS.code)
    if p.suffix not in (".py", notebook.SUFFIX):
        raise ConvlintError(f"{script}: train-check runs Python scripts (.py) and notebooks "
                            "(.ipynb)", rule=R.BAD_ARGUMENTS.code)
    nb = notebook.read_notebook(script) if notebook.is_notebook(script) else None
    rep = _train_check(script, p, nb, opts, progress)
    if nb is not None:
        return nb.map_report(rep)
    if opts.verify_fix and rep.verdict in ("faulty", "crash"):
        from convlint.analyzers.training.verify import verify

        def rerun(path: str, seconds: float) -> ScriptReport:
            o = replace(
                opts,
                timeout=max(5.0, min(opts.timeout, seconds)),
                extend_steps=None,
                verify_fix=False,
            )
            return _train_check(path, Path(path), None, o, lambda m: None)

        rep = verify(rep, script, rerun, opts.verify_budget, opts.write_fixed, progress)
    return rep


def _train_check(script: str, p: Path, nb: notebook.Notebook | None, opts: TrainOptions,
                 progress: Callable) -> ScriptReport:
    with tempfile.TemporaryDirectory(prefix="convlint-train-") as tmp:
        trace_file, status_file = Path(tmp) / "trace.jsonl", Path(tmp) / "status.json"
        cmd = [
            opts.python or sys.executable,
            "-m",
            "convlint.analyzers.sandbox.training_boot",
            "--trace",
            str(trace_file),
            "--status",
            str(status_file),
        ]
        if opts.every:
            cmd += ["--every", str(opts.every)]
        if opts.max_steps:
            cmd += ["--max-steps", str(opts.max_steps)]
            if opts.extend_steps and opts.max_steps == D.MAX_STEPS:
                cmd += ["--extend-steps", str(opts.extend_steps)]
        if opts.max_epochs:
            cmd += ["--max-epochs", str(opts.max_epochs)]
        cwd = opts.cwd or os.getcwd()
        if nb is not None:
            code_file = Path(tmp) / "code.py"
            code_file.write_text(nb.text, encoding="utf-8")
            cmd += ["--code", str(code_file)]
            cwd = opts.cwd or str(p.resolve().parent)
        cmd += ["--", str(p.resolve()), *opts.args]
        env = dict(
            os.environ,
            TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3"),
            PYTHONUNBUFFERED="1",
        )
        progress(
            f"train-check: running {script} (timeout {opts.timeout:g} s, at most "
            f"{opts.max_steps} steps)"
        )
        t0 = time.perf_counter()
        run = run_script_process(cmd, cwd=cwd, env=env, timeout=opts.timeout,
                                 memory_mb=opts.memory_mb, output_limit=opts.output_limit)
        rc, timed_out = run.returncode, run.timed_out
        seconds = time.perf_counter() - t0
        trace = read_trace(str(trace_file))
        status = {}
        if status_file.exists():
            try:
                status = json.loads(status_file.read_text())
            except ValueError:
                status = {}
        stderr = run.output
    progress(f"train-check: {len(trace['steps'])} steps recorded in {seconds:.1f} s; analysing")
    crash = None
    err = status.get("error")
    script_abs = str(p.resolve())
    if timed_out:
        crash = Finding(
            R.TRAIN_TIMEOUT.code,
            R.TRAIN_TIMEOUT.severity,
            R.TRAIN_TIMEOUT.stage,
            f"{script} did not finish within {opts.timeout:g} s; the {len(trace['steps'])} "
            f"recorded steps were analysed",
            evidence={"timeout": opts.timeout},
        )
    elif err:
        crash = Finding(
            R.TRAIN_SCRIPT_FAILED.code,
            "error",
            R.TRAIN_SCRIPT_FAILED.stage,
            f"{err['type']}: {err['message'][:300]}"
            + (
                f" (the script may use {opts.memory_mb or default_memory_mb()} MB of address "
                f"space: --memory-limit MB changes that, 0 lifts it)"
                if err["type"] == "MemoryError"
                else ""
            ),
            location=Location(file=script, line=err.get("line"))
            if err.get("line")
            else Location(file=script),
            evidence={"traceback": err.get("traceback", "")[-2000:]},
        )
    elif not status and rc != 0:
        crash = Finding(
            R.TRAIN_SCRIPT_FAILED.code,
            "error",
            R.TRAIN_SCRIPT_FAILED.stage,
            f"the training process died (exit status {rc})"
            + (" — out of memory?" if rc in (-9, 137) else ""),
            evidence={"status": rc, "stderr": stderr[-2000:]},
        )
    extra = {"seconds": round(seconds, 2), "timed_out": timed_out, "exit_status": rc}
    if not trace["steps"] and not trace["layers"] and crash is None:
        f = Finding(
            R.TRAIN_NOTHING.code,
            "error",
            R.TRAIN_NOTHING.stage,
            f"{script} ran, but no Keras Model.fit and no torch optimizer step was seen, so "
            f"there was nothing to check",
            location=Location(file=script),
        )
        return ScriptReport(script, "error", (f,), kind="training", extra={"training": extra})
    rep = analyze(trace, script, opts.thresholds, extra, crash)
    # findings at the script's own lines carry the script's path as the user gave it
    fs = tuple(
        f.with_(location=replace(f.location, file=script))
        if f.location.file and os.path.abspath(f.location.file) == script_abs
        else f
        for f in rep.findings
    )
    return ScriptReport(rep.script, rep.verdict, fs, kind="training", extra=rep.extra)
