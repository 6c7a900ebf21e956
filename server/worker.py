"""The background worker: a separate process that runs the language server's heavy checks.

The server never imports TensorFlow, torch or TVM; this process does, and it may crash natively
(a segfault, an abort) or hang on a hostile model. The server then kills it and starts another.

Protocol, one JSON document per line.
In (stdin):  ``{"id": str, "kind": str, "params": {...}}``, one job at a time.
Out (the original stdout, kept private: anything the frameworks print goes to stderr):
``{"id", "event": "progress", "message"}``, then exactly one of
``{"id", "event": "result", "report": {...}}`` or ``{"id", "event": "failed", "message"}``.
The first line the worker writes is ``{"event": "ready", "pid": N}``.

Job kinds: ``check-pair`` (the conversion check of one pair, optionally with repair), ``trace``
(``convlint trace`` of a script), ``train-check`` (``convlint train-check`` of a script). With ``CONVLINT_WORKER_TEST_HOOKS=1`` two more exist for
tests of crash isolation: ``abort`` (``os.abort()`` after a progress event) and ``sleep``.

Cancel: the server sends SIGTERM to the worker's process group; the worker turns it into an
exception, so temporary folders and half-written files are removed and a script it runs is
killed, then exits. Whatever is still alive a few seconds later gets SIGKILL.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback

from convlint.analyzers import defaults as D
from convlint.analyzers.subproc import raise_on_sigterm, terminated


def _check_pair(p: dict, progress) -> dict:
    from convlint.analyzers.project import check_pair_report

    progress(f"checking {os.path.basename(p['source'])} -> {os.path.basename(p['target'])}")
    return check_pair_report(
        p["source"], p["target"], atol=D.tolerance(p.get("atol", D.ATOL), "atol"),
        rtol=D.tolerance(p.get("rtol", D.RTOL), "rtol"), num_inputs=D.count(p.get("num_inputs", D.NUM_INPUTS)),
        seed=int(p.get("seed", D.SEED)), inputs=p.get("inputs"),
        use_tvm=bool(p.get("use_tvm", True)), repair=bool(p.get("repair")), output=p.get("output"),
        progress=progress)


def _trace(p: dict, progress) -> dict:
    from convlint.analyzers.differential.check import DiffOptions
    from convlint.analyzers.pipeline import PipelineOptions
    from convlint.analyzers.scripts.trace import TraceOptions, trace_script

    d = DiffOptions(atol=D.tolerance(p.get("atol", D.ATOL), "atol"), rtol=D.tolerance(p.get("rtol", D.RTOL), "rtol"),
                    use_tvm=bool(p.get("use_tvm", True)))
    opts = TraceOptions(PipelineOptions(d), allow_exec=True, timeout=D.timeout(p.get("timeout", D.SCRIPT_TIMEOUT)),
                        python=p.get("python"), cwd=p.get("cwd"), verify_fixes=bool(p.get("verify_fixes", True)))
    return trace_script(p["script"], opts, progress).to_dict()


def _train_check(p: dict, progress) -> dict:
    from convlint.analyzers.training.check import TrainOptions, train_check

    opts = TrainOptions(allow_exec=True, timeout=D.timeout(p.get("timeout", D.SCRIPT_TIMEOUT)), python=p.get("python"),
                        cwd=p.get("cwd"), max_steps=p.get("max_steps", 400), max_epochs=p.get("max_epochs", 20))
    return train_check(p["script"], opts, progress).to_dict()


def _abort(p: dict, progress) -> dict:
    progress("about to abort (test hook)")
    time.sleep(float(p.get("delay", 0.2)))
    os.abort()


def _sleep(p: dict, progress) -> dict:
    try:
        for i in range(int(p.get("seconds", 10) * 10)):
            if i % 10 == 0:
                progress(f"sleeping: {i // 10} s")
            time.sleep(0.1)
    except KeyboardInterrupt:
        if p.get("swallow"):  # as a C extension does when an import is interrupted
            raise ImportError("interrupted import (test hook)") from None
        raise
    return {"slept": p.get("seconds", 10)}


JOBS = {"check-pair": _check_pair, "trace": _trace, "train-check": _train_check}
TEST_JOBS = {"abort": _abort, "sleep": _sleep}


def main() -> int:
    raise_on_sigterm()  # the server cancels a job with SIGTERM first: temporary files are removed
    try:
        return _serve()
    except KeyboardInterrupt:
        return 143


def _serve() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # frameworks that print to stdout must not corrupt the protocol
    sys.stdout = sys.stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    jobs = dict(JOBS, **(TEST_JOBS if os.environ.get("CONVLINT_WORKER_TEST_HOOKS") == "1" else {}))

    def send(msg: dict) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    send({"event": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            job = json.loads(line)
            jid, kind, params = job["id"], job["kind"], job.get("params") or {}
        except (ValueError, KeyError, TypeError) as e:
            send({"id": None, "event": "failed", "message": f"bad job: {e}"})
            continue
        fn = jobs.get(kind)
        if fn is None:
            send({"id": jid, "event": "failed", "message": f"unknown job kind {kind!r}"})
            continue
        try:
            report = fn(params, lambda m, jid=jid: send({"id": jid, "event": "progress", "message": str(m)}))
            send({"id": jid, "event": "result", "report": report})
        except Exception as e:  # a job's failure is reported; the worker goes on
            from convlint.analyzers.extras import as_user_error

            user = as_user_error(e)
            msg = (user.message + (f". {user.hint}" if user.hint else "")) if user else (
                f"internal error: {e.__class__.__name__}: {e}\n{traceback.format_exc(limit=8)}")
            send({"id": jid, "event": "failed", "message": msg, "rule": user.rule if user else "CL009"})
        # SIGTERM arrived: native code can swallow the exception it raises (an import interrupted
        # inside a C extension surfaces as ImportError and leaves that module broken), so exit
        # rather than serve another job
        if terminated():
            return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
