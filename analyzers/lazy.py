"""Lazy module proxies: ``from convlint.analyzers.lazy import numpy as np`` imports numpy on
first attribute access. The static script rules run in the language server on every edit and
need numpy only when a script spells out normalization constants or BatchNorm epsilons; the
server's start-up should not pay for it."""

from __future__ import annotations

import importlib


class LazyModule:
    def __init__(self, name: str):
        self._name = name
        self._mod = None

    def __getattr__(self, attr: str):
        if self._mod is None:
            self._mod = importlib.import_module(self._name)
        return getattr(self._mod, attr)


numpy = LazyModule("numpy")
