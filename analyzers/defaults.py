"""The one home of every option default and its validation.

The CLI (whose argparse defaults are None), the project config, the LSP settings and the worker's
job parameters all take their defaults from here and validate with the same functions, so that a
value one entry point accepts is never refused by another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

_N = TypeVar("_N", int, float)

ATOL = 1e-4  # absolute tolerance of an output element (an element fails beyond both atol and rtol)
RTOL = 1e-4  # relative tolerance
NUM_INPUTS = 32  # random inputs per check
SEED = 0
SCRIPT_TIMEOUT = 600.0  # seconds a traced or training script may run
MAX_SERVER_TIMEOUT = 3600.0  # the language server's ceiling on a script's time
JOB_TIMEOUT = 900.0  # the language server: seconds before a background job counts as hung
MAX_EPOCHS = 20  # train-check caps every Keras fit at this many epochs
MAX_STEPS = 400  # train-check stops the script after this many optimizer steps
VERIFY_BUDGET = 600.0  # train-check --verify-fix: seconds for all the reruns together
MAX_STEPS_EXTENDED = 2000  # ... unless the run is still undecided then: watched up to this many


def _number(value, name: str, ok: Callable[[Any], bool], expected: str,
            kind: Callable[[Any], _N] = float):
    try:
        v = kind(value)
        good = ok(v) and (kind is not int or v == float(value))
    except (TypeError, ValueError):
        good = False
    if not good:  # NaN fails every comparison: refused too
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return v


def tolerance(value, name: str = "tolerance") -> float:
    """A tolerance: a number of at least 0 (0 asks for exact equality). Raises ValueError."""
    return _number(value, name, lambda v: v >= 0, "a number of at least 0")


def timeout(value, name: str = "timeout") -> float:
    """A time limit in seconds: a number above 0. Raises ValueError."""
    return _number(value, name, lambda v: v > 0, "a number of seconds above 0")


def count(value, name: str = "count") -> int:
    """A count of at least 1. Raises ValueError."""
    return _number(value, name, lambda v: v >= 1, "a whole number of at least 1", int)


def number(value, name: str = "value") -> float:
    """A finite number. Raises ValueError."""
    import math

    return _number(value, name, math.isfinite, "a finite number")


def integer(value, name: str = "value") -> int:
    """A whole number. Raises ValueError."""
    return _number(value, name, lambda v: True, "a whole number", int)
