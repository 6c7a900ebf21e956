"""Model runners, one per format, behind one interface (see ``base.Runner``).

This package imports no framework; each runner imports its own lazily. Its names are resolved
on first use (PEP 562), so that light modules here (``keras_config``, ``detect``) can be
imported without numpy: the language server reads Keras configs on every edit.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers only: at run time ``__getattr__`` imports them on first use
    from convlint.analyzers.models.base import LayerInfo, Runner, TensorSpec
    from convlint.analyzers.models.detect import FORMATS, detect_format, open_model

_NAMES = {"LayerInfo": "base", "Runner": "base", "TensorSpec": "base",
          "FORMATS": "detect", "detect_format": "detect", "open_model": "detect"}

__all__ = ["FORMATS", "LayerInfo", "Runner", "TensorSpec", "detect_format", "open_model"]


def __getattr__(name: str):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
