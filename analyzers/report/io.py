"""Writing reports and repaired models: atomically, and never over an input."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

# files a report must never replace, whoever names them: models, scripts, configs
PRECIOUS = (
    ".onnx",
    ".tflite",
    ".keras",
    ".h5",
    ".hdf5",
    ".pt2",
    ".pt",
    ".pth",
    ".pb",
    ".py",
    ".sh",
    ".toml",
)


def write_new_file(
    path: str, data: str | bytes, *, protect: tuple = (), report: bool = False
) -> None:
    """Write ``data`` to ``path`` atomically (temp file, then rename).

    ``protect`` lists input paths that must never be overwritten. A ``report`` (text, HTML,
    node data) also never replaces an existing model, script or config file."""
    target = check_output_path(path, protect=protect, report=report)
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as e:
        raise _unwritable(path, e) from None
    try:
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):  # a full disk, a read-only mount: the user's to fix, not a bug
            raise _unwritable(path, e) from None
        raise


def _unwritable(path: str, e: OSError):
    from convlint.analyzers.errors import ConvlintError

    return ConvlintError(
        f"cannot write {path}: {e.strerror or e}", hint="choose a writable output path"
    )


def check_output_path(path: str, *, protect: tuple = (), report: bool = False) -> Path:
    """Raise ConvlintError when ``write_new_file`` would refuse ``path``; callers check their
    output paths before the work, so a bad one costs nothing. Returns the resolved path."""
    from convlint.analyzers.errors import ConvlintError

    target = Path(path).resolve()
    for p in protect:
        if p and Path(p).exists() and Path(p).resolve() == target:
            raise ConvlintError(f"refusing to overwrite the input {p}",
                                hint="choose another output path")
    if report and target.exists() and (target.suffix.lower() in PRECIOUS or target.is_dir()):
        raise ConvlintError(
            f"refusing to overwrite {path} with a report: it is a model, script or config file",
            hint="choose another output path",
        )
    folder = next(d for d in target.parents if d.exists())  # the nearest folder that exists
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        raise ConvlintError(f"cannot write {path}: {folder} is not a writable folder",
                            hint="choose a writable output path")
    return target
