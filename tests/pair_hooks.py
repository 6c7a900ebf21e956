"""Faults injected into the pair check of `convlint check`'s workers (pool or Ray), through
CONVLINT_WORKER_PLUGINS=pair_hooks (with tests/ on PYTHONPATH); nothing here is in the product.

- CONVLINT_TEST_ABORT_ONCE=FILE: the first worker to check a pair dies natively (os.abort) after
  creating FILE; the next one finds FILE and checks the pair (a worker lost mid-task, then a retry).
- CONVLINT_TEST_ABORT_ALWAYS=1: every worker checking a pair dies (a converter that always crashes).
- CONVLINT_TEST_SLOW_ON=MARK: a pair whose source path holds MARK sleeps 120 s before its check
  (a long pair, for interrupting a run).
"""

from __future__ import annotations

import os
import time

from convlint.analyzers import app

_real = app.check_pair


def _check_pair(req, progress=None):
    once = os.environ.get("CONVLINT_TEST_ABORT_ONCE")
    if once and not os.path.exists(once):
        open(once, "w").close()
        os.abort()
    if os.environ.get("CONVLINT_TEST_ABORT_ALWAYS"):
        os.abort()
    slow = os.environ.get("CONVLINT_TEST_SLOW_ON")
    if slow and slow in req.source:
        time.sleep(120)
    return _real(req, progress)


app.check_pair = _check_pair
