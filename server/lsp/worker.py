"""The background worker: a separate process that runs the language server's heavy checks.

The server never imports TensorFlow, torch or TVM; this process does, and it may crash natively
(a segfault, an abort) or hang on a hostile model. The server then kills it and starts another.

The line protocol (one JSON document per line) and its message types are in ``protocol.py``,
shared with the job runner (``jobs.py``), the other end.

Job kinds: ``check-pair`` (the conversion check of one pair, optionally with repair), ``trace``
(``convlint trace`` of a script), ``train-check`` (``convlint train-check`` of a script).
``CONVLINT_WORKER_PLUGINS`` names modules (comma-separated) whose ``JOBS`` table adds job kinds;
the tests of crash isolation add ``abort`` and ``sleep`` that way (tests/worker_hooks.py).

Cancel: the server sends SIGTERM to the worker's process group; the worker turns it into an
exception, so temporary folders and half-written files are removed and a script it runs is
killed, then exits. Whatever is still alive a few seconds later gets SIGKILL.
"""

from __future__ import annotations

import json
import os
import sys
import traceback

from convlint.analyzers.subproc import limit_memory, raise_on_sigterm, terminated
from convlint.server.lsp import protocol as P


def _check_pair(p: dict, progress) -> dict:
    from convlint.analyzers import app

    req = app.DiffRequest.from_dict(p)
    progress(f"checking {os.path.basename(req.source)} -> {os.path.basename(req.target)}")
    return app.check_pair(req, progress).to_dict()


def _trace(p: dict, progress) -> dict:
    from convlint.analyzers import app

    req = app.TraceRequest.from_dict({**p, "allow_exec": True})  # the server asked for trust
    return app.trace(req, progress=progress).to_dict()


def _train_check(p: dict, progress) -> dict:
    from convlint.analyzers import app

    req = app.TrainRequest.from_dict({**p, "allow_exec": True})
    return app.train(req, progress=progress).to_dict()


JOBS = {"check-pair": _check_pair, "trace": _trace, "train-check": _train_check}


def job_table() -> dict:
    """The job kinds, with those of the modules CONVLINT_WORKER_PLUGINS names."""
    from convlint.analyzers.subproc import worker_plugins

    jobs = dict(JOBS)
    for plugin in worker_plugins():
        jobs.update(getattr(plugin, "JOBS", {}))
    return jobs


def main() -> int:
    raise_on_sigterm()  # the server cancels a job with SIGTERM first: temporary files are removed
    limit_memory()  # a model that allocates without bound fails its job, not the machine
    try:
        return _serve()
    except KeyboardInterrupt:
        return 143


def _serve() -> int:
    out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # frameworks that print to stdout must not corrupt the protocol
    sys.stdout = sys.stderr
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    jobs = job_table()

    def send(msg: P.EventMessage) -> None:
        out.write(P.encode(msg))
        out.flush()

    send(P.ready(os.getpid()))
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            job = json.loads(line)
            jid, kind, params = job["id"], job["kind"], job.get("params") or {}
        except (ValueError, KeyError, TypeError) as e:
            send(P.failed(None, f"internal error: bad job: {e}", "CL009"))
            continue
        fn = jobs.get(kind)
        if fn is None:
            send(P.failed(jid, f"internal error: unknown job kind {kind!r}", "CL009"))
            continue
        try:
            report = fn(params, lambda m, jid=jid: send(P.progress(jid, str(m))))
            send(P.result(jid, report))
        except Exception as e:  # a job's failure is reported; the worker goes on
            from convlint.analyzers.extras import as_user_error

            user = as_user_error(e)
            msg = (user.message + (f". {user.hint}" if user.hint else "")) if user else (
                f"internal error: {e.__class__.__name__}: {e}\n{traceback.format_exc(limit=8)}")
            send(P.failed(jid, msg, user.rule if user else "CL009"))
        # SIGTERM arrived: native code can swallow the exception it raises (an import interrupted
        # inside a C extension surfaces as ImportError and leaves that module broken), so exit
        # rather than serve another job
        if terminated():
            return 143
    return 0


if __name__ == "__main__":
    sys.exit(main())
