"""Where convlint keeps what it can rebuild: ``$CONVLINT_CACHE_DIR`` (default
``~/.cache/convlint``), with one folder per kind (``tvm``, ``trace``)."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path


def cache_dir() -> Path:
    base = os.environ.get("CONVLINT_CACHE_DIR") or os.path.join(
        os.path.expanduser("~"), ".cache", "convlint"
    )
    return Path(base)


@functools.cache
def engine_fingerprint() -> str:
    """A hash of the engine's own source (every ``.py`` of ``convlint.analyzers``), part of every
    cache key: results and compiled modules made by another convlint (an upgrade, or a fix in how
    a model is imported into TVM) are never reused, even when the version number is the same."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]
