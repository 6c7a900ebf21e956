"""Repairs of torch.export targets (``.pt2``): the format-neutral plan written into the FX graph
of a loaded ExportedProgram, saved with ``torch.export.save`` to a new file.

An ExportedProgram holds one flat graph of aten ``call_function`` nodes; each node remembers
the module stack it was traced in (``nn_module_stack``), and onnx2torch names a module after its
ONNX node, so a source layer's name selects the nodes that compute it (``models.torch_runner``
reads layers the same way). Edits are chosen by the ops' schemas, through the table the
TorchScript patcher uses too (``repair.aten``): an attribute becomes the argument that carries
it, ``reverse`` the ``aten.flip`` pair around a cumulative op, ``axes`` the dims of a reduction
(or of a chain of one-axis ones), a spurious module's nodes are removed by routing its input to
its readers, and a crash on negative gather indices gets the wrap inserted before the gather.
After the edits every node's metadata is propagated again on fake tensors (``torch.export.save``
writes each node's shape, which an edit may change), and the written bytes are loaded back
before they are kept. What a graph does not let us express with certainty is left undone; the
target file itself is only read.
"""

from __future__ import annotations

import io
import logging

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


def patch_exported(target: str, plan, out: str) -> list:
    """Write ``out``: ``target`` with ``plan``'s weight patches, attribute edits and graph edits
    applied; returns the keys of the steps done. ``out`` is always written (the pipeline checks
    it again): an unmodified copy when the program cannot be loaded, edited or saved."""
    import torch

    return write_plan(target, plan, out, load=torch.export.load, save=save,
                      set_tensor=_set_tensor, attribute=_attribute, graph_edit=_graph_edit)


def save(ep) -> bytes:
    """The edited program's bytes: graph checked and recompiled, shapes propagated again, the
    signature's output names following the output node; loaded back once, so a file torch
    cannot read again is never written."""
    import torch
    from torch.fx.passes.fake_tensor_prop import FakeTensorProp

    gm = ep.graph_module
    gm.graph.lint()
    gm.recompile()
    vals = [n.meta["val"] for n in gm.graph.nodes if n.op == "placeholder"]
    mode = next((v.fake_mode for v in vals if hasattr(v, "fake_mode")), None)
    FakeTensorProp(gm, mode).propagate_dont_convert_inputs(*vals)
    out = next(n for n in gm.graph.nodes if n.op == "output")
    for spec, arg in zip(ep.graph_signature.output_specs, out.args[0], strict=True):
        if hasattr(spec.arg, "name") and hasattr(arg, "name"):
            spec.arg.name = arg.name
    buf = io.BytesIO()
    torch.export.save(ep, buf)
    data = buf.getvalue()
    torch.export.load(io.BytesIO(data))
    return data


# --------------------------------------------------------------------------- nodes
def op_name(node) -> str | None:
    """``aten::max`` for a call of ``aten.max.dim``: the schema name ``repair.aten`` keys on."""
    schema = getattr(node.target, "_schema", None) if node.op == "call_function" else None
    return schema.name if schema is not None else None


def _layer_nodes(ep, name: str | None) -> list:
    """The call nodes traced inside module ``name`` (a qualname or an ONNX-style ``/a/b``
    scope) or its submodules, in graph order."""
    from convlint.analyzers.models.torch_runner import _layer_of

    if not name:
        return []
    key = name.replace("/", ".").strip(".")
    nodes = []
    for n in ep.graph_module.graph.nodes:
        if n.op == "call_function" and n.meta.get("nn_module_stack"):
            layer = _layer_of(n)[0]
            if layer == key or layer.startswith(key + "."):
                nodes.append(n)
    return nodes


def _of(nodes: list, ops) -> list:
    return [n for n in nodes if op_name(n) in ops]


def _arg_index(node, arg: str) -> int | None:
    schema = getattr(node.target, "_schema", None)
    names = [a.name for a in schema.arguments] if schema is not None else []
    return names.index(arg) if arg in names else None


def _set_arg(node, arg: str, value) -> bool:
    """Pass ``value`` as ``node``'s schema argument ``arg``, by position (the arguments before
    it filled with the schema's defaults where the exporter dropped them)."""
    from convlint.analyzers.models.torch_runner import _call_args

    i = _arg_index(node, arg)
    if i is None:
        return False
    args, kwargs = _call_args(node)
    kwargs.pop(arg, None)
    schema = list(node.target._schema.arguments)
    while len(args) <= i:
        a = schema[len(args)]
        args.append(a.default_value if a.has_default_value() else None)
    args[i] = value
    node.args, node.kwargs = tuple(args), kwargs
    return True


def _arg(node, arg: str):
    from convlint.analyzers.models.torch_runner import _call_args

    i = _arg_index(node, arg)
    args, kwargs = _call_args(node)
    if arg in kwargs:
        return kwargs[arg]
    return args[i] if i is not None and i < len(args) else None


def _call(graph, op, args: tuple, like):
    """A new call of ``op`` inserted before ``like``, traced in ``like``'s module."""
    with graph.inserting_before(like):
        n = graph.call_function(op, args)
    n.meta["nn_module_stack"] = dict(like.meta.get("nn_module_stack") or {})
    return n


def _set_tensor(ep, name: str, value) -> bool:
    """Copy ``value`` into the parameter, buffer or constant ``name`` (a state-dict key)."""
    import torch

    store = ep.state_dict if name in ep.state_dict else (getattr(ep, "constants", {}) or {})
    t = store.get(name)
    if not isinstance(t, torch.Tensor) or int(np.size(value)) != t.numel():
        return False
    with torch.no_grad():
        t.data.copy_(torch.from_numpy(np.asarray(value)).to(t.dtype).reshape(t.shape))
    return True


# --------------------------------------------------------------------------- attributes
def _attribute(ep, e) -> bool:
    """Make the nodes of module ``e.node`` compute with attribute ``e.attribute`` = ``e.value``."""
    nodes = _layer_nodes(ep, e.node)
    graph = ep.graph_module.graph
    if not nodes:
        return False
    if e.attribute == "reverse":
        return _set_reverse(graph, nodes, bool(e.value))
    if e.attribute == "axes":
        return _set_axes(nodes, [int(a) for a in e.value])
    if e.attribute == "clip":
        return _set_clip(nodes, [float(v) for v in e.value])
    value = argument_value(e.attribute, e.value) if e.attribute in ARGS else None
    hits = [n for n in nodes if _arg_index(n, ARGS.get(e.attribute, "")) is not None]
    if value is None or not hits:
        return False
    return all(_set_arg(n, ARGS[e.attribute], value) for n in hits)


def _set_reverse(graph, nodes: list, reverse: bool) -> bool:
    """Add or remove the ``aten.flip`` pair around each cumulative op on its own axis."""
    import torch

    ops = _of(nodes, CUMULATIVE)
    for op in ops:
        x, dim = op.args[0], _arg(op, "dim")
        users = list(op.users)
        before = x if op_name(x) == "aten::flip" else None
        after = users[0] if len(users) == 1 and op_name(users[0]) == "aten::flip" else None
        if (before is not None and after is not None) == reverse:
            continue
        if before is not None and after is not None:
            op.replace_input_with(before, before.args[0])
            after.replace_all_uses_with(op)
            graph.erase_node(after)
            if not before.users:
                graph.erase_node(before)
            continue
        if not isinstance(dim, int):
            return False
        flip = torch.ops.aten.flip.default
        op.replace_input_with(x, _call(graph, flip, (x, [dim]), op))
        back = _call(graph, flip, (op, [dim]), op.next)
        for u in users:
            u.replace_input_with(op, back)
    return bool(ops)


def _set_axes(nodes: list, axes: list) -> bool:
    """Reduce over ``axes``: one op with an int list, or a chain of one-axis ops each reading
    the one before (through the ``getitem`` of a values-and-indices result)."""
    ops = [n for n in _of(nodes, REDUCE) if _arg_index(n, "dim") is not None]
    if not ops:
        return False
    dims = [_arg(n, "dim") for n in ops]
    if len(ops) == 1 and isinstance(dims[0], (list, tuple)):
        return _set_arg(ops[0], "dim", axes)
    if len(ops) != len(axes) or not all(isinstance(d, int) for d in dims):
        return False
    if any(_value_of(ops[k + 1].args[0]) is not ops[k] for k in range(len(ops) - 1)):
        return False
    order = chain_order(axes, any(bool(_arg(n, "keepdim")) for n in ops))
    if order is None:
        return False
    return all(_set_arg(n, "dim", a) for n, a in zip(ops, order, strict=True))


def _value_of(x):
    """The op whose result ``x`` is: ``x``, or the op of a ``getitem`` reading its values."""
    import operator

    if getattr(x, "op", None) == "call_function" and x.target is operator.getitem:
        return x.args[0]
    return x


def _set_clip(nodes: list, bounds: list) -> bool:
    ops = _of(nodes, CLIP)
    for n in ops:
        for arg, v in zip(CLIP[op_name(n) or ""], bounds, strict=True):
            if not _set_arg(n, arg, float(np.clip(v, -FLOAT_MAX, FLOAT_MAX))):
                return False
    return bool(ops)


# --------------------------------------------------------------------------- graph edits
def _graph_edit(ep, e) -> bool:
    """Only removal maps onto a module's nodes (the other edits name ONNX tensors)."""
    return e.action == "remove" and bool(e.nodes) and all(_remove(ep, n) for n in e.nodes)


def _remove(ep, name: str) -> bool:
    """Route the one tensor the nodes of module ``name`` read from outside it to the readers of
    the one node they are read through (an op with no source counterpart that keeps its
    input's shape), and erase the module's nodes."""
    graph = ep.graph_module.graph
    nodes = _layer_nodes(ep, name)
    inside = set(nodes)
    state = {n for n in graph.nodes if n.op == "placeholder" and n.name not in
             set(ep.graph_signature.user_inputs)}
    ins = {a for n in nodes for a in n.all_input_nodes if a not in inside and a not in state}
    outs = [n for n in nodes if any(u not in inside for u in n.users)]
    if len(ins) != 1 or len(outs) != 1:
        return False
    (x,), y = tuple(ins), outs[0]
    sx, sy = (getattr(v.meta.get("val"), "shape", None) for v in (x, y))
    if sx is None or sx != sy:
        return False
    y.replace_all_uses_with(x)
    for n in reversed(nodes):
        graph.erase_node(n)
    return True


# --------------------------------------------------------------------------- crash repair
def wrap_negative_indices(ep, modules: list) -> list:
    """Insert ``where(idx < 0, idx + size(x, dim), idx)`` before each gather of the named
    modules (torch.gather rejects the negative indices ONNX allows); the modules done."""
    import torch

    aten = torch.ops.aten
    graph = ep.graph_module.graph
    done = []
    for name in modules:
        ops = _of(_layer_nodes(ep, name), GATHER)
        for n in ops:
            x, dim, idx = n.args[0], n.args[1], n.args[2]
            size = _call(graph, aten.sym_size.int, (x, dim), n)
            neg = _call(graph, aten.lt.Scalar, (idx, 0), n)
            wrapped = _call(graph, aten.add.Tensor, (idx, size), n)
            n.replace_input_with(idx, _call(graph, aten.where.self, (neg, wrapped, idx), n))
        if ops:
            done.append(name)
    return done


def wrap_gather(path: str, modules: list) -> tuple[list, bytes | None]:
    """The modules of the program at ``path`` whose gathers got the wrap, and the edited
    program's bytes (None when none did)."""
    import torch

    ep = torch.export.load(path)
    done = wrap_negative_indices(ep, modules)
    return done, save(ep) if done else None
