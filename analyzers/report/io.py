"""Writing reports and repaired models: atomically, and never over an input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_new_file(path: str, data: str | bytes, *, protect: tuple = ()) -> None:
    """Write ``data`` to ``path`` atomically (temp file, then rename).

    ``protect`` lists input paths that must never be overwritten."""
    from convlint.analyzers.errors import ConvlintError

    target = Path(path).resolve()
    for p in protect:
        if p and Path(p).exists() and Path(p).resolve() == target:
            raise ConvlintError(f"refusing to overwrite the input {p}",
                                hint="choose another output path")
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
