"""Which argument of an aten op carries which attribute of the source's op: the knowledge the
TorchScript patcher (``torchscript.py``, ``aten::`` graph nodes) and the torch.export patcher
(``exported.py``, FX ``call_function`` nodes) share. Both name an op by its schema
(``aten::max``), so one table serves both graphs; what differs is only how a node is edited.

The repair plan speaks ONNX (``axis``, ``keepdims``, ``pads`` as top, left, bottom, right);
``argument_value`` turns such a value into the one the aten argument takes, or None when torch
cannot express it (asymmetric padding).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

# ONNX attribute -> the aten argument that carries it
ARGS = {"axis": "dim", "keepdims": "keepdim", "strides": "stride", "dilations": "dilation",
        "pads": "padding", "output_padding": "output_padding", "group": "groups"}
# ops that reduce over ``dim`` (one int per op, or an int list)
REDUCE = {"aten::max", "aten::min", "aten::amax", "aten::amin", "aten::sum", "aten::mean",
          "aten::prod", "aten::logsumexp", "aten::any", "aten::all", "aten::argmax",
          "aten::argmin", "aten::norm", "aten::var", "aten::std"}
# ops that accumulate along ``dim``: ONNX's ``reverse`` is the flip pair around them
CUMULATIVE = {"aten::cumsum", "aten::cumprod", "aten::cummax", "aten::cummin",
              "aten::logcumsumexp"}
# clip-like ops -> their (lower, upper) bound arguments
CLIP = {"aten::hardtanh": ("min_val", "max_val"), "aten::clamp": ("min", "max"),
        "aten::clip": ("min", "max")}
# ops that index along ``dim`` and reject the negative indices ONNX allows
GATHER = {"aten::gather"}
FLOAT_MAX = 3.4e38  # an ONNX clip bound of +-inf, as a finite float32


def argument_value(attribute: str, value: object) -> object | None:
    """``value`` of the ONNX ``attribute`` as its aten argument takes it; None when torch has
    no spelling for it (pads that differ between the two sides of an axis)."""
    if attribute == "pads":
        t, left, b, r = (int(x) for x in value)  # type: ignore[union-attr]
        return [t, left] if (t, left) == (b, r) else None
    if attribute == "keepdims":
        return bool(value)
    if isinstance(value, (list, tuple)):
        return [int(x) for x in value]
    return value


def chain_order(axes: list, kept: bool) -> list | None:
    """The ``dim`` of each op of a chain of one-axis reductions that reduces ``axes``: with
    the dims kept every axis keeps its index; without, each reduction shifts the next one's
    axes, so negative axes go first from the most negative and non-negative ones from the
    highest. None for a mix of both (that needs the rank)."""
    if kept or all(a < 0 for a in axes):
        return sorted(axes)
    if all(a >= 0 for a in axes):
        return sorted(axes, reverse=True)
    return None


def write_plan(target: str, plan, out: str, *, load: Callable, save: Callable,
               set_tensor: Callable, attribute: Callable, graph_edit: Callable) -> list:
    """Write ``out``: the model ``load(target)`` gives, with ``plan``'s weight patches,
    attribute edits and graph edits applied through the three editors, as ``save`` serializes
    it; the keys of the steps done. An edit that raises is not done (a graph shape the editor
    does not know); a model that cannot be loaded, edited or saved gets nothing done. ``out`` is
    always written (the pipeline checks it again): an unmodified copy when nothing was done."""
    from convlint.analyzers.report.io import write_new_file

    done: list = []
    data = None
    try:
        model = load(target)
        done += [p.tensor for p in plan.patches if _guard(set_tensor, model, p.tensor, p.value)]
        done += [e.node for e in plan.edits if _guard(attribute, model, e)]
        done += [e.key for e in plan.graph_edits if _guard(graph_edit, model, e)]
        data = save(model) if done else None
    except Exception:  # noqa: BLE001 - an unreadable or unsavable model: nothing done
        log.debug("patching %s failed", target, exc_info=True)
        done = []
    data = data if done and data is not None else Path(target).read_bytes()
    write_new_file(out, data, protect=(target,))
    return done


def _guard(fn, *args) -> bool:
    """``fn(*args)``; False when it raises."""
    try:
        return bool(fn(*args))
    except Exception:  # noqa: BLE001 - an edit that cannot be made is simply not done
        log.debug("edit %s failed", getattr(fn, "__name__", fn), exc_info=True)
        return False
