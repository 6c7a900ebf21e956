"""Job kinds for the tests of the worker's crash and cancel isolation, added to the worker's job
table through CONVLINT_WORKER_PLUGINS=worker_hooks (with tests/ on PYTHONPATH): they live here,
not in the product."""

from __future__ import annotations

import os
import time


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


JOBS = {"abort": _abort, "sleep": _sleep}


def _abort_on(marker: str) -> None:
    """CONVLINT_TEST_ABORT_ON=MARK: a pair whose source path holds MARK kills its `check` worker
    natively (os.abort), as a converter's segfault would."""
    from convlint.analyzers import app

    real = app.check_pair

    def check_pair(req, progress=None):
        if marker in req.source:
            os.abort()
        return real(req, progress)

    app.check_pair = check_pair


if os.environ.get("CONVLINT_TEST_ABORT_ON"):
    _abort_on(os.environ["CONVLINT_TEST_ABORT_ON"])
