"""Model runners, one per format, behind one interface (see ``base.Runner``).

This package imports no framework; each runner imports its own lazily. Its names are resolved
on first use (PEP 562), so that light modules here (``keras_config``, ``detect``) can be
imported without numpy: the language server reads Keras configs on every edit.
"""

_NAMES = {"LayerInfo": "base", "Runner": "base", "TensorSpec": "base",
          "FORMATS": "detect", "detect_format": "detect", "open_model": "detect"}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{_NAMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
