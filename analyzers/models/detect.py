"""Find a model's format from its path and first bytes, and open the right runner.

The extension names the format; the bytes must agree. A file whose bytes say another format
(an ONNX file named ``.tflite``) is refused with a message that says which.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Literal, get_args

from convlint.analyzers.errors import ModelLoadError

Format = Literal["keras", "savedmodel", "onnx", "tflite", "torch-exported", "torchscript",
                 "openvino", "executorch"]
FORMATS: tuple[str, ...] = get_args(Format)
EXTENSIONS: dict[str, Format] = {
    ".onnx": "onnx",
    ".tflite": "tflite",
    ".keras": "keras",
    ".h5": "keras",
    ".hdf5": "keras",
    ".pt2": "torch-exported",
    ".pt": "torchscript",
    ".pth": "torchscript",
    ".ts": "torchscript",
    ".jit": "torchscript",
    ".xml": "openvino",  # the IR's graph; its weights are the .bin of the same name beside it
    ".pte": "executorch",
}


def sniff(path: str) -> str | None:
    """The format the bytes look like, or None when they say nothing certain."""
    p = Path(path)
    if p.is_dir():
        return "savedmodel" if (p / "saved_model.pb").is_file() else None
    with open(p, "rb") as fh:
        head = fh.read(16)
    if len(head) >= 8 and head[4:8] == b"TFL3":
        return "tflite"
    if len(head) >= 8 and head[4:6] == b"ET" and head[6:8].isdigit():  # ExecuTorch's ETxx
        return "executorch"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return "keras"
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(p) as z:
                names = z.namelist()
        # a corrupt archive (bad directory, undecodable names, ...): nothing certain
        except Exception:
            return None
        if any(n.endswith("config.json") for n in names) and any(
            n.endswith(".weights.h5") for n in names
        ):
            return "keras"
        if any("serialized_exported_program" in n or n.endswith("archive_format") for n in names):
            return "torch-exported"
        if any(n.endswith("/data.pkl") for n in names) and any("/code/" in n for n in names):
            return "torchscript"
        if any(n.endswith("/data.pkl") for n in names):
            return "torch-pickle"
        return None
    if head.lstrip().startswith((b"<?xml", b"<net")):
        with open(p, "rb") as fh:
            return "openvino" if b"<net" in fh.read(4096) else None
    if head[:1] == b"\x80":  # a bare pickle stream
        return "torch-pickle"
    return None


def detect_format(path: str) -> str:
    """The format of ``path``; raises ModelLoadError when it is missing or unsupported."""
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{path}: no such file or directory", path=path)
    if p.is_dir():
        if (p / "saved_model.pb").is_file():
            return "savedmodel"
        raise ModelLoadError(f"{path}: a directory, but not a TF SavedModel (no saved_model.pb)",
                             path=path)
    if p.stat().st_size == 0:
        raise ModelLoadError(f"{path}: the file is empty", path=path)
    by_ext = EXTENSIONS.get(p.suffix.lower())
    by_bytes = sniff(path)
    if by_bytes == "torch-pickle":
        raise ModelLoadError(
            f"{path}: refused: a pickled PyTorch object (torch.save of a module or state_dict). "
            "convlint never unpickles model files, because unpickling can run arbitrary code",
            path=path,
            rule="CL004",
            hint="save the model with torch.export.save(...) as .pt2, or torch.jit.save(...) as "
            "TorchScript",
        )
    if by_ext == "openvino" and by_bytes != "openvino":  # .xml is everyone's extension
        raise ModelLoadError(f"{path}: not an OpenVINO IR (no <net> element near its start)",
                             path=path)
    if by_ext is None and by_bytes is None:
        raise ModelLoadError(
            f"{path}: unsupported model format (extension {p.suffix or 'none'!r})", path=path,
            hint="supported: " + ", ".join(sorted(EXTENSIONS)) + " and SavedModel directories")
    if by_ext and by_bytes and by_ext != by_bytes:
        raise ModelLoadError(
            f"{path}: the extension says {by_ext} but the contents are {by_bytes}", path=path,
            hint="rename the file to match its contents")
    fmt = by_bytes or by_ext
    assert fmt is not None  # both None was refused above
    return fmt


def open_model(path: str | os.PathLike, *, unsafe_load: bool = False,
               input_shapes: dict | None = None):
    """A lazily loading Runner for ``path`` (nothing heavy is imported until it is used)."""
    path = str(path)
    fmt = detect_format(path)
    if fmt == "onnx":
        from convlint.analyzers.models.onnx_runner import OnnxRunner
        return OnnxRunner(path)
    if fmt == "tflite":
        from convlint.analyzers.models.tflite_runner import TFLiteRunner
        return TFLiteRunner(path)
    if fmt == "keras":
        from convlint.analyzers.models.keras_runner import KerasRunner
        return KerasRunner(path, unsafe_load=unsafe_load)
    if fmt == "savedmodel":
        from convlint.analyzers.models.savedmodel_runner import SavedModelRunner
        return SavedModelRunner(path)
    if fmt == "torch-exported":
        from convlint.analyzers.models.torch_runner import ExportedProgramRunner
        return ExportedProgramRunner(path)
    if fmt == "torchscript":
        from convlint.analyzers.models.torch_runner import TorchScriptRunner
        return TorchScriptRunner(path, input_shapes=input_shapes)
    if fmt == "openvino":
        from convlint.analyzers.models.openvino_runner import OpenVinoRunner
        return OpenVinoRunner(path)
    if fmt == "executorch":
        from convlint.analyzers.models.executorch_runner import ExecuTorchRunner
        return ExecuTorchRunner(path)
    raise ModelLoadError(f"{path}: unsupported model format {fmt}", path=path)  # pragma: no cover
