"""Which optional framework a check needs, and the one finding when it is not installed.

convlint's core (numpy, onnx, onnxruntime, the server, the CLI, the reports) installs with
``pip install convlint``; each framework is an extra (pyproject.toml). A check that needs a
framework the environment lacks raises :class:`MissingFramework` (CL005, exit 2) naming the extra,
never an ImportError. The TVM cross-check is optional in every check: without TVM it is skipped
with a CL011 note, as ``--no-tvm`` does.
"""

from __future__ import annotations

import importlib.util
import sys

from convlint.analyzers.errors import ConvlintError

# top-level module -> (extra, what needs it)
_EXTRAS = {
    "tensorflow": ("tensorflow", "TensorFlow"),
    "keras": ("tensorflow", "Keras (installed with TensorFlow)"),
    "tf2onnx": ("tensorflow", "tf2onnx"),
    "tflite": ("tensorflow", "the tflite schema package"),
    "torch": ("torch", "PyTorch"),
    "onnxscript": ("torch", "onnxscript (torch.onnx's dynamo exporter)"),
    "tvm": ("tvm", "Apache TVM"),
    "tvm_ffi": ("tvm", "Apache TVM"),
    "openvino": ("openvino", "OpenVINO"),
    "executorch": ("executorch", "ExecuTorch"),
}

class MissingFramework(ConvlintError):
    """A framework the check needs is not installed in this environment (CL005)."""

    def __init__(self, module: str, purpose: str | None = None, **kw):
        extra, name = _EXTRAS.get(module, (None, module))
        where = f"{sys.executable}"
        msg = (f"{purpose + ' needs ' if purpose else ''}{name}, which is not installed in this "
               f"environment ({where})")
        hint = (f"install it with: pip install 'convlint[{extra}]'"
                + (" (or 'convlint[tensorflow-cpu]')" if extra == "tensorflow" else "")
                if extra else f"install the '{module}' package")
        kw.setdefault("rule", "CL005")
        super().__init__(msg, hint=hint, **kw)
        self.module = module
        self.extra = extra


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it."""
    if module in sys.modules:
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_from(exc: BaseException, purpose: str | None = None, path: str | None = None
                 ) -> MissingFramework | None:
    """The MissingFramework an ImportError stands for, when it names one of convlint's extras."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    if top not in _EXTRAS:
        return None
    return MissingFramework(top, purpose, path=path)


def as_user_error(exc: BaseException) -> ConvlintError | None:
    """``exc`` as the user-facing error it stands for: itself when it is a ConvlintError, a
    MissingFramework when it is the import of an extra that is not installed, else None."""
    if isinstance(exc, ConvlintError):
        return exc
    return missing_from(exc)


_TVM_PROBLEM: list = []


def tvm_problem() -> str | None:
    """None when TVM imports in this process; else why not, in words for a CL011 note: not
    installed, or installed but broken (an apache-tvm whose apache-tvm-ffi is of another release
    fails to load its runtime library)."""
    if not _TVM_PROBLEM:
        if not available("tvm"):
            why = "TVM is not installed in this environment"
        else:
            try:
                import tvm  # noqa: F401
                from tvm import relax  # noqa: F401

                why = None
            except Exception as e:  # OSError (an undefined symbol), ImportError
                text = " ".join(str(e).split())[:200]
                why = f"TVM is installed but does not load ({type(e).__name__}: {text})"
        _TVM_PROBLEM.append(why)
    return _TVM_PROBLEM[0]
