"""What a model file *declares* it holds, checked before any framework opens it.

The size limit on the file (``CONVLINT_MAX_MODEL_BYTES``) says nothing about what the file
inflates to: a 3 MB ``.keras`` whose ``model.weights.h5`` member inflates to 3 GiB of zeros, or an
HDF5 dataset that declares a terabyte, costs the machine its memory before the framework gives
up. Every container a loader opens is read here for its declared sizes only (zip central
directory, HDF5 dataset shapes, TFLite buffer offsets, SavedModel variable shapes), in
milliseconds, and refused with CL002 when:

- the declared uncompressed total is over the model size limit, or
- a member larger than ``RATIO_FLOOR`` declares a compression ratio over
  ``CONVLINT_MAX_COMPRESSION_RATIO`` (default 100: weights compress about 1.1:1; a run of zeros
  a thousand to one).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

from convlint.analyzers.errors import ModelLoadError

DEFAULT_MAX_RATIO = 100
RATIO_FLOOR = 64 * 1024**2  # members smaller than this may compress as well as they like
HINT = "raise CONVLINT_MAX_MODEL_BYTES (or CONVLINT_MAX_COMPRESSION_RATIO) if the model is trusted"


def max_ratio() -> float:
    try:
        return float(os.environ.get("CONVLINT_MAX_COMPRESSION_RATIO", DEFAULT_MAX_RATIO))
    except ValueError:
        return DEFAULT_MAX_RATIO


def _refuse(path: str, what: str, limit: int) -> ModelLoadError:
    return ModelLoadError(f"{path}: refused: {what} (the limit is {limit} bytes); a file that "
                          "declares more than it holds is a decompression bomb", path=path,
                          hint=HINT)


def check(path: str, limit: int) -> None:
    """Raise ModelLoadError (CL002) when the container at ``path`` declares more than ``limit``
    bytes, or a bomb's compression ratio. Files this module does not know pass."""
    p = Path(path)
    if p.is_dir():
        _check_savedmodel(p, limit)
        return
    try:
        with open(p, "rb") as fh:
            head = fh.read(8)
    except OSError:
        return  # the loader says what is wrong with it
    if head.startswith(b"PK"):
        _check_zip(path, limit)
    elif head.startswith(b"\x89HDF"):
        _check_hdf5(path, path, limit)
    elif head[4:8] == b"TFL3":
        _check_tflite(path, limit)
    elif head[4:6] == b"ET":
        _check_pte(path, limit)


def _check_pte(path: str, limit: int) -> None:
    """An ExecuTorch program's extended header (``eh00``: program size, segment base offset and
    segment size, little-endian u64s) must describe bytes the file holds."""
    import struct

    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(48)
    if len(head) < 40 or head[8:12] != b"eh00":
        return  # no extended header: the flatbuffer is all there is, and the loader verifies it
    program, base, segments = struct.unpack_from("<QQQ", head, 16)
    if max(program, base + segments) > size or base + segments > limit:
        raise _refuse(path, f"its header declares {max(program, base + segments)} bytes of a "
                      f"{size}-byte file", limit)


def _check_zip(path: str, limit: int) -> None:
    try:
        z = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a zip after all, or a broken one: the loader's error says so
    with z:
        total, ratio = 0, max_ratio()
        for info in z.infolist():
            total += info.file_size
            if total > limit:
                raise _refuse(path, f"its members inflate to more than {total} bytes", limit)
            if info.file_size > RATIO_FLOOR and info.file_size > ratio * max(info.compress_size, 1):
                raise _refuse(path, f"member {info.filename} inflates {info.compress_size} bytes "
                              f"to {info.file_size} (more than {ratio:g}:1)", limit)
        for info in z.infolist():  # a Keras archive's weights are an HDF5 file of their own
            if info.filename.endswith(".h5") and info.compress_type == zipfile.ZIP_STORED:
                _check_hdf5_member(path, z, info, limit)


def _datasets_bytes(f) -> int:
    import h5py
    import numpy as np

    total = 0

    def visit(_name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset) and obj.shape is not None:
            total += int(np.prod(obj.shape, dtype=np.float64)) * obj.dtype.itemsize
            if total > 2**62:
                total = 2**62
    f.visititems(visit)
    return total


def _check_hdf5(path: str, source, limit: int) -> None:
    """The HDF5 datasets' declared sizes (shape x item size), read from metadata only."""
    try:
        import h5py
    except ImportError:
        return
    try:
        with h5py.File(source, "r") as f:
            total = _datasets_bytes(f)
    except Exception:  # noqa: BLE001 - a file h5py cannot read: the loader reports it
        return
    if total > limit:
        raise _refuse(path, f"its HDF5 datasets declare {total} bytes", limit)


def _check_hdf5_member(path: str, z: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> None:
    try:
        member = z.open(info)  # stored (not deflated): seeking is cheap
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError):
        return  # a damaged archive: the loader's error says so
    with member:
        _check_hdf5(path, member, limit)


def _check_tflite(path: str, limit: int) -> None:
    """Buffers stored outside the flatbuffer (offset, size: models over 2 GiB) must lie inside
    the file; declared tensor sizes above the limit are refused."""
    try:
        import tflite
    except ImportError:
        return
    size = os.path.getsize(path)
    try:
        buf = Path(path).read_bytes()
        m = tflite.Model.GetRootAsModel(buf, 0)
        for i in range(m.BuffersLength()):
            b = m.Buffers(i)
            if b is None:
                continue
            off, n = b.Offset(), b.Size()
            if off > 1 and (off + n > size or n > limit):
                raise _refuse(path, f"buffer {i} points at bytes {off}..{off + n} of a "
                              f"{size}-byte file", limit)
    except ModelLoadError:
        raise
    except Exception:  # noqa: BLE001 - a flatbuffer the reader cannot walk: the loader reports it
        return


def _check_savedmodel(p: Path, limit: int) -> None:
    """The variables' declared shapes, from the checkpoint index (no values are read)."""
    index = p / "variables" / "variables.index"
    if not index.is_file():
        return
    try:
        from convlint.analyzers.models.tf_common import import_tf

        tf = import_tf()
        reader = tf.train.load_checkpoint(str(p / "variables" / "variables"))
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except Exception:  # noqa: BLE001 - the loader reports an unreadable SavedModel
        return
    total = 0
    for name, shape in shapes.items():
        n = 1
        for d in shape:
            n *= int(d)
        total += n * (getattr(dtypes.get(name), "size", 4) or 4)
        if total > limit:
            raise _refuse(str(p), f"its variables declare more than {total} bytes", limit)
