"""Where convlint keeps what it can rebuild: ``$CONVLINT_CACHE_DIR`` (default
``~/.cache/convlint``), with one folder per kind (``tvm``, ``trace``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("CONVLINT_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "convlint")
    return Path(base)
