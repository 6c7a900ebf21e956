"""A preflight read of an HDF5 file (legacy Keras ``.h5``) in a child process, with a timeout.

A corrupt HDF5 file can make the HDF5 library loop forever inside native code (seen by the
loader fuzzer: a variable-length string attribute whose heap reference was damaged), where no
Python timeout can reach. So before Keras opens an ``.h5`` file, a child process reads every
attribute and every dataset of it; a file it cannot read, or cannot read within the time, is
refused as corrupt. Cost: one short process (h5py only, no TensorFlow).
"""

from __future__ import annotations

import os
import subprocess
import sys

from convlint.analyzers.errors import ModelLoadError

_READ_ALL = r"""
import sys, h5py
def visit(name, obj):
    for k in obj.attrs.keys():
        obj.attrs[k]
    if isinstance(obj, h5py.Dataset):
        obj[()]
with h5py.File(sys.argv[1], "r") as f:
    for k in f.attrs.keys():
        f.attrs[k]
    f.visititems(visit)
"""


def preflight(path: str, timeout: float | None = None) -> None:
    """Raise ModelLoadError when ``path`` cannot be read completely in ``timeout`` seconds
    (default: 10 s plus 1 s per 50 MB)."""
    size = os.path.getsize(path)
    limit = timeout if timeout is not None else 10.0 + size / 50e6
    try:
        p = subprocess.run([sys.executable, "-c", _READ_ALL, path], capture_output=True, text=True,
                           timeout=limit, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise ModelLoadError(
            f"{path}: cannot be read as a keras model: reading its HDF5 contents did not finish "
            f"in {limit:.0f} s (a corrupt file)",
            path=path,
        ) from None
    if p.returncode != 0:
        last = (p.stderr.strip().splitlines() or ["the HDF5 reader died"])[-1]
        raise ModelLoadError(
            f"{path}: cannot be read as a keras model: {last[:300]}",
            path=path,
            hint="check that the file is complete and of the format its extension says",
        )
