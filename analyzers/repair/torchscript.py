"""Repairs of TorchScript targets (``.pt`` from ``torch.jit.trace`` or ``torch.jit.script``):
the format-neutral plan written into the forward graphs of a loaded copy.

A TorchScript file keeps its modules (onnx2torch names each after its ONNX node, so a source
layer's name is the module that computes it) and one forward graph per module type; the graph is
what ``torch.jit.save`` serializes, so editing it in place and saving the module writes the
repair. Each edit is mapped onto the aten ops that implement the layer: an attribute of the
source's op (``reverse``, ``axes``, ``axis``, ``keepdims``, a convolution's geometry or output
padding, clip bounds) becomes the argument of the aten op that carries it (a ``prim::Constant``
or an int list), ``reverse`` the ``aten::flip`` pair around a cumulative op, a spurious module is
removed by routing its input to its readers, and a crash on negative gather indices gets the
wrap ops (``idx + size`` where negative) inserted. What a graph does not let us express with
certainty is left undone (the pipeline then says the target cannot be patched in place); the
target file itself is only read.
"""

from __future__ import annotations

import io
import logging
from typing import Any

import numpy as np

from convlint.analyzers.repair.aten import (
    ARGS,
    CLIP,
    CUMULATIVE,
    FLOAT_MAX,
    GATHER,
    REDUCE,
    argument_value,
    chain_order,
    write_plan,
)

log = logging.getLogger(__name__)


def patch_torchscript(target: str, plan, out: str) -> list:
    """Write ``out``: ``target`` with ``plan``'s weight patches, attribute edits and graph edits
    applied; returns the keys of the steps done. ``out`` is always written (the pipeline checks
    it again): an unmodified copy when the file cannot be loaded or saved."""
    import torch

    return write_plan(target, plan, out, load=lambda p: torch.jit.load(p, map_location="cpu"),
                      save=_bytes, set_tensor=_set_tensor, attribute=_attribute,
                      graph_edit=_graph_edit)


# --------------------------------------------------------------------------- modules
def _module(root, name: str | None):
    """The submodule ``name`` (a qualname, or an ONNX-style ``/a/b`` scope), or None."""
    if not name:
        return None
    mods = dict(root.named_modules())
    for key in (name, name.replace("/", ".").strip(".")):
        if key and key in mods:
            return mods[key]
    return None


def _own_graph(root, mod):
    """``mod``'s forward graph when no other module shares its type (a graph belongs to the
    type: editing a shared one would change every instance), else None."""
    if not mod._c._has_method("forward"):
        return None
    t = mod._c._type()
    if sum(1 for _, x in root.named_modules() if x._c._type() == t) > 1:
        return None
    return mod.graph


def _set_tensor(root, name: str, value) -> bool:
    """Copy ``value`` into the parameter or buffer ``name`` (a state-dict key)."""
    import torch

    path, _, attr = name.rpartition(".")
    mod = _module(root, path) if path else root
    t = getattr(mod, attr, None) if mod is not None else None
    if t is None or not isinstance(t, torch.Tensor) or int(np.size(value)) != t.numel():
        return False
    with torch.no_grad():
        t.copy_(torch.from_numpy(np.asarray(value)).to(t.dtype).reshape(t.shape))
    return True


# --------------------------------------------------------------------------- graph helpers
def _arg_index(node, arg: str) -> int | None:
    """The position of the schema argument ``arg`` among ``node``'s inputs, or None."""
    import torch

    try:
        schema = torch._C.parse_schema(node.schema())
    except Exception:  # noqa: BLE001 - prim ops and unresolved ones have no schema
        return None
    names = [a.name for a in schema.arguments]
    i = names.index(arg) if arg in names else None
    return i if i is not None and i < node.inputsSize() else None


def _set_input(graph, node, i: int, value) -> None:
    """Feed ``node``'s input ``i`` a new constant (its old one may be shared with other ops)."""
    with graph.insert_point_guard(node):
        node.replaceInput(i, graph.insertConstant(value))


def _const(v) -> Any:
    """The Python value of a constant or a list of constants, else None."""
    n = v.node()
    if n.kind() == "prim::Constant":
        return v.toIValue()
    if n.kind() == "prim::ListConstruct":
        items = [_const(x) for x in n.inputs()]
        return None if any(x is None for x in items) else items
    return None


def _nodes(graph, kinds) -> list:
    return [n for n in graph.nodes() if n.kind() in kinds]


def _uses(v) -> list:
    return [u.user for u in v.uses()]


# --------------------------------------------------------------------------- attributes
def _attribute(root, e) -> bool:
    """Make the module ``e.node`` compute with attribute ``e.attribute`` = ``e.value``."""
    mod = _module(root, e.node)
    g = _own_graph(root, mod) if mod is not None else None
    if g is None:
        return False
    if e.attribute == "reverse":
        return _set_reverse(g, bool(e.value))
    if e.attribute == "axes":
        return _set_axes(g, [int(a) for a in e.value])
    if e.attribute == "clip":
        return _set_clip(g, [float(v) for v in e.value])
    value = argument_value(e.attribute, e.value) if e.attribute in ARGS else None
    if value is None:
        return False
    arg = ARGS[e.attribute]
    hits = [(n, i) for n in g.nodes() if (i := _arg_index(n, arg)) is not None]
    if not hits:
        return False
    for n, i in hits:
        _set_input(g, n, i, value)
    return True


def _set_reverse(g, reverse: bool) -> bool:
    """Add or remove the ``aten::flip`` pair around each cumulative op on its own axis."""
    ops = _nodes(g, CUMULATIVE)
    for op in ops:
        x, y = op.inputsAt(0), op.outputsAt(0)
        before = x.node() if x.node().kind() == "aten::flip" else None
        after = _uses(y)[0] if len(_uses(y)) == 1 and _uses(y)[0].kind() == "aten::flip" else None
        flipped = before is not None and after is not None
        if flipped == reverse:
            continue
        if flipped and before is not None and after is not None:
            op.replaceInput(0, before.inputsAt(0))
            after.outputsAt(0).replaceAllUsesWith(y)
            after.destroy()
            if not _uses(before.outputsAt(0)):
                before.destroy()
            continue
        with g.insert_point_guard(op):
            dims = g.insertNode(g.create("prim::ListConstruct", [op.inputsAt(1)]))
            dims.output().setType(_int_list())
            op.replaceInput(0, g.insert("aten::flip", [x, dims.output()]))
            back = g.insert("aten::flip", [y, dims.output()])
        back.node().moveAfter(op)
        y.replaceAllUsesWith(back)
        back.node().replaceInput(0, y)
    return bool(ops)


def _int_list():
    import torch

    return torch._C.ListType.ofInts()


def _set_axes(g, axes: list) -> bool:
    """Reduce over ``axes``: one op with an int list, or a chain of one-axis ops (keepdim off:
    the order is ``aten.chain_order``'s)."""
    ops = [n for n in _nodes(g, REDUCE) if _arg_index(n, "dim") is not None]
    if not ops:
        return False
    dims = [n.inputsAt(_arg_index(n, "dim") or 0) for n in ops]
    if len(ops) == 1 and isinstance(_const(dims[0]), list):
        _set_input(g, ops[0], _arg_index(ops[0], "dim") or 0, axes)
        return True
    if len(ops) != len(axes) or not all(isinstance(_const(d), int) for d in dims):
        return False
    if any(ops[k + 1].inputsAt(0).node() is not ops[k] for k in range(len(ops) - 1)):
        return False
    keep = [_arg_index(n, "keepdim") for n in ops]
    kept = any(k is not None and _const(n.inputsAt(k)) for n, k in zip(ops, keep, strict=True))
    order = chain_order(axes, kept)
    if order is None:
        return False
    for n, a in zip(ops, order, strict=True):
        _set_input(g, n, _arg_index(n, "dim") or 0, a)
    return True


def _set_clip(g, bounds: list) -> bool:
    ops = _nodes(g, CLIP)
    for n in ops:
        for arg, v in zip(CLIP[n.kind()], bounds, strict=True):
            i = _arg_index(n, arg)
            if i is None:
                return False
            _set_input(g, n, i, float(np.clip(v, -FLOAT_MAX, FLOAT_MAX)))
    return bool(ops)


# --------------------------------------------------------------------------- graph edits
def _graph_edit(root, e) -> bool:
    """Only removal maps onto a module tree (the other edits name ONNX tensors)."""
    return e.action == "remove" and bool(e.nodes) and all(_remove(root, n) for n in e.nodes)


def _remove(root, name: str) -> bool:
    """Route the one tensor input of the call to module ``name`` to the call's readers (an op
    with no source counterpart that keeps its input's shape), in its parent's graph."""
    path, _, attr = name.replace("/", ".").strip(".").rpartition(".")
    parent = _module(root, path) if path else root
    if parent is None or _module(root, name) is None:
        return False
    g = _own_graph(root, parent) if parent is not root else root.graph
    if g is None:
        return False
    calls = [n for n in g.nodes() if n.kind() == "prim::CallMethod" and n.s("name") == "forward"
             and n.inputsAt(0).node().kind() == "prim::GetAttr"
             and n.inputsAt(0).node().s("name") == attr]
    if len(calls) != 1 or calls[0].inputsSize() != 2 or calls[0].outputsSize() != 1:
        return False
    call = calls[0]
    x, y = call.inputsAt(1), call.outputsAt(0)
    if x.type().kind() != "TensorType" or y.type().kind() != "TensorType":
        return False
    y.replaceAllUsesWith(x)
    call.destroy()
    return True


# --------------------------------------------------------------------------- crash repair
def wrap_negative_indices(root, modules: list) -> list:
    """Insert ``where(idx < 0, idx + size(x, dim), idx)`` before each ``aten::gather`` of the
    named modules (torch.gather rejects the negative indices ONNX allows); the modules done."""
    done = []
    for name in modules:
        mod = _module(root, name)
        g = _own_graph(root, mod) if mod is not None else None
        if g is None:
            continue
        ops = _nodes(g, GATHER)
        for n in ops:
            x, dim, idx = n.inputsAt(0), n.inputsAt(1), n.inputsAt(2)
            with g.insert_point_guard(n):
                size = g.insert("aten::size", [x, dim])
                neg = g.insert("aten::lt", [idx, g.insertConstant(0)])
                n.replaceInput(2, g.insert("aten::where", [neg, g.insert("aten::add", [idx, size]),
                                                           idx]))
        if ops:
            done.append(name)
    return done


def wrap_gather(path: str, modules: list) -> tuple[list, bytes | None]:
    """The modules of the TorchScript file at ``path`` whose gathers got the wrap, and the
    edited module's bytes (None when none did)."""
    import torch

    m = torch.jit.load(path, map_location="cpu")
    done = wrap_negative_indices(m, modules)
    return (done, _bytes(m)) if done else (done, None)


def _bytes(m) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.jit.save(m, buf)
    return buf.getvalue()
