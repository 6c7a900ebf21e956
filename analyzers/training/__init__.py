"""Training checks: probes that record layer statistics while a model trains (Keras callback,
PyTorch hooks), rules over those traces, and ``convlint train-check``.

Public API::

    from convlint.analyzers.training import ConvlintCallback, convlint_probe

Neither import pulls a framework in until it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # for type checkers: the names __getattr__ provides on first use
    from ..sandbox.probe_torch import convlint_probe
    from .rules import Thresholds, analyze

    ConvlintCallback: type  # a keras Callback subclass, built by probe_keras.callback_class()


def __getattr__(name: str):
    if name == "ConvlintCallback":
        from ..sandbox.probe_keras import callback_class

        return callback_class()
    if name == "convlint_probe":
        from ..sandbox.probe_torch import convlint_probe

        return convlint_probe
    if name in ("analyze", "Thresholds"):
        from . import rules

        return getattr(rules, name)
    raise AttributeError(name)


__all__ = ["ConvlintCallback", "convlint_probe", "analyze", "Thresholds"]
