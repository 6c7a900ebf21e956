"""patch-graph: remove a spurious op, restore a missing activation, or make an op compute the
source's semantics (an attribute where the op has one, else an exactly equivalent subgraph), in
an ONNX model held in memory (the caller writes the file)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class GraphEdit:
    action: str          # "remove", "insert-activation", "insert-transpose", "insert-affine",
                         # "insert-op", "floor-divide" (a Div that truncates made to floor),
                         # "semantics" (nodes[0] made to compute ``changes``)
    nodes: list          # node names to remove
    tensor: str | None = None
    bounds: tuple | None = None  # (lo, hi) of the activation to insert
    perm: list | None = None     # insert-transpose
    affine: tuple | None = None  # insert-affine: (scale, shift) to apply
    op: str | None = None        # insert-op: a unary ONNX op to put after ``tensor``
    changes: list | None = None  # semantics: [(attribute, source value)] of a description
                                 # (models/describe.py: fmod, reduction, include_self, ...)

    @property
    def relu(self) -> bool:
        lo, hi = self.bounds or (0.0, float("inf"))
        return lo == 0.0 and hi == float("inf")

    @property
    def key(self) -> str:
        """The node this edit removes (the first one) or creates; ``apply_onnx`` reports it."""
        if self.action in ("remove", "floor-divide", "semantics"):
            return self.nodes[0]
        suffix = {"insert-activation": "relu" if self.relu else "clip",
                  "insert-transpose": "transpose", "insert-affine": "affine",
                  "insert-op": (self.op or "").lower()}[self.action]
        return f"{self.tensor}_convlint_{suffix}"


def _rewire(model, old: str, new: str, skip=None) -> None:
    for n in model.graph.node:
        if n is skip:
            continue
        for i, x in enumerate(n.input):
            if x == old:
                n.input[i] = new
    for o in model.graph.output:
        if o.name == old:  # keep the graph's output name: rename the producer's output instead
            for n in model.graph.node:
                for i, x in enumerate(n.output):
                    if x == new:
                        n.output[i] = old
            for n in model.graph.node:
                for i, x in enumerate(n.input):
                    if x == new and n is not skip:
                        n.input[i] = old


def apply_onnx(model, edits: list) -> list:
    """Apply ``edits`` to an onnx ModelProto in place; returns the node names touched."""
    import onnx
    from onnx import numpy_helper

    done = []
    for e in edits:
        if e.action == "remove":
            for name in e.nodes:
                node = next((n for n in model.graph.node if n.name == name), None)
                if node is None or not node.input or not node.output:
                    continue
                src, out = node.input[0], node.output[0]
                model.graph.node.remove(node)
                _rewire(model, out, src)
                done.append(name)
        elif e.action == "insert-activation" and e.tensor:
            lo, hi = e.bounds or (0.0, float("inf"))
            out = f"{e.tensor}_convlint_act"
            if e.relu:
                act = onnx.helper.make_node("Relu", [e.tensor], [out], name=e.key)
            else:
                names = [f"{e.tensor}_convlint_min", f"{e.tensor}_convlint_max"]
                for nm, v in zip(names, (lo, hi), strict=True):
                    model.graph.initializer.append(numpy_helper.from_array(
                        np.array(np.clip(v, -3.4e38, 3.4e38), np.float32), nm))
                act = onnx.helper.make_node("Clip", [e.tensor, *names], [out], name=e.key)
            _insert(model, e.tensor, out, [act])
            done.append(act.name)
        elif e.action == "floor-divide":
            node = next(
                (n for n in model.graph.node if n.name == e.nodes[0] and n.op_type == "Div"), None
            )
            if node is not None and _opset(model) >= 15:
                _floor_divide(model, node)
                done.append(node.name)
        elif e.action == "semantics" and e.changes:
            node = next((n for n in model.graph.node if n.name == e.nodes[0]), None)
            if node is not None and _semantics(model, node, dict(e.changes)):
                done.append(e.nodes[0])
        elif e.action == "insert-op" and e.tensor and e.op:
            out = e.key
            _insert(
                model, e.tensor, out, [onnx.helper.make_node(e.op, [e.tensor], [out], name=out)]
            )
            done.append(out)
        elif e.action == "insert-transpose" and e.tensor and e.perm:
            out = f"{e.tensor}_convlint_layout"
            t = onnx.helper.make_node("Transpose", [e.tensor], [out], perm=[int(p) for p in e.perm],
                                      name=e.key)
            _insert(model, e.tensor, out, [t])
            done.append(t.name)
        elif e.action == "insert-affine" and e.tensor and e.affine:
            a, b = e.affine
            names = [f"{e.tensor}_convlint_scale", f"{e.tensor}_convlint_shift"]
            for nm, v in zip(names, (a, b), strict=True):
                model.graph.initializer.append(numpy_helper.from_array(np.array(v, np.float32), nm))
            mid, out = f"{e.tensor}_convlint_mul", e.key
            nodes = [onnx.helper.make_node("Mul", [e.tensor, names[0]], [mid], name=mid),
                     onnx.helper.make_node("Add", [mid, names[1]], [out], name=out)]
            _insert(model, e.tensor, out, nodes)
            done.append(out)
    return done


def _opset(model) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def _floor_divide(model, node) -> None:
    """Make ``node`` (a Div, which truncates integers toward zero) round toward minus infinity:
    q - (q * b != a and (a < 0) != (b < 0)), in the operands' own type (CastLike, opset 15)."""
    import onnx

    a, b = node.input[0], node.input[1]
    out, t = node.output[0], f"{node.name}_convlint_floor"
    mk = onnx.helper.make_node
    new = [
        mk("Div", [a, b], [f"{t}_q"], name=f"{t}_div"),
        mk("Sub", [a, a], [f"{t}_za"], name=f"{t}_za"),
        mk("Sub", [b, b], [f"{t}_zb"], name=f"{t}_zb"),
        mk("Mul", [f"{t}_q", b], [f"{t}_qb"], name=f"{t}_qb"),
        mk("Equal", [f"{t}_qb", a], [f"{t}_exact"], name=f"{t}_exact"),
        mk("Not", [f"{t}_exact"], [f"{t}_inexact"], name=f"{t}_inexact"),
        mk("Less", [a, f"{t}_za"], [f"{t}_an"], name=f"{t}_an"),
        mk("Less", [b, f"{t}_zb"], [f"{t}_bn"], name=f"{t}_bn"),
        mk("Xor", [f"{t}_an", f"{t}_bn"], [f"{t}_neg"], name=f"{t}_neg"),
        mk("And", [f"{t}_inexact", f"{t}_neg"], [f"{t}_fix"], name=f"{t}_fix"),
        mk("CastLike", [f"{t}_fix", f"{t}_q"], [f"{t}_one"], name=f"{t}_one"),
        mk("Sub", [f"{t}_q", f"{t}_one"], [out], name=node.name),
    ]
    i = list(model.graph.node).index(node)
    model.graph.node.remove(node)
    for k, n in enumerate(new):
        model.graph.node.insert(i + k, n)


# the reductions ScatterElements takes (16: none, add, mul; 18: max, min); each but "none"
# folds the data tensor's own value in (torch's include_self=True)
SCATTER_REDUCTIONS = {"none": 11, "add": 16, "mul": 16, "max": 18, "min": 18}


def _semantics(model, node, want: dict) -> bool:
    """Make ``node`` compute the described semantics ``want``; False when it cannot."""
    import onnx

    if node.op_type == "Mod" and set(want) == {"fmod"}:
        for a in [a for a in node.attribute if a.name == "fmod"]:
            node.attribute.remove(a)
        node.attribute.append(onnx.helper.make_attribute("fmod", int(want["fmod"])))
        return True
    if node.op_type == "Softplus" and set(want) == {"threshold"} and want["threshold"] is not None:
        _softplus_threshold(model, node, float(want["threshold"]))
        return True
    if node.op_type != "ScatterElements" or "reduction" not in want:
        return False
    r, include_self = want["reduction"], bool(want.get("include_self", True))
    if r == "mean" and _opset(model) >= 16:
        _scatter_mean(model, node, include_self)
        return True
    if include_self != (r != "none") or _opset(model) < SCATTER_REDUCTIONS.get(r, 99):
        return False  # an ONNX reduction always folds the data in, "none" never does
    for a in [a for a in node.attribute if a.name == "reduction"]:
        node.attribute.remove(a)
    node.attribute.append(onnx.helper.make_attribute("reduction", r))
    return True


def _softplus_threshold(model, node, threshold: float) -> None:
    """Give ``node`` (a Softplus of ``u``) torch's linear branch: ``u`` itself where ``u`` is
    above ``threshold``. torch compares ``beta * x``, the very ``u`` an exporter feeds the
    Softplus (Softplus(beta x) / beta), so the threshold applies to the node's own input."""
    import onnx
    from onnx import numpy_helper

    u, y, t = node.input[0], node.output[0], f"{node.name}_convlint_threshold"
    mk = onnx.helper.make_node
    model.graph.initializer.append(numpy_helper.from_array(np.array(threshold, np.float32), t))
    smooth = f"{t}_smooth"
    i = list(model.graph.node).index(node)
    node.output[0] = smooth
    like = _opset(model) >= 15  # CastLike: the threshold in the input's own float type
    new = ([mk("CastLike", [t, u], [f"{t}_t"], name=f"{t}_t")] if like else []) + [
        mk("Greater", [u, f"{t}_t" if like else t], [f"{t}_above"], name=f"{t}_above"),
        mk("Where", [f"{t}_above", u, smooth], [y], name=f"{t}_where")]
    for k, n in enumerate(new):
        model.graph.node.insert(i + 1 + k, n)


def _scatter_mean(model, node, include_self: bool) -> None:
    """Replace ``node`` (a ScatterElements) by torch's ``scatter_reduce(reduce="mean")``: the
    sum of the values scattered to each position (plus the data's own value when
    ``include_self``) over their count (plus one), and the data unchanged where no index
    points. Exact up to the order of the additions."""
    import onnx
    from onnx import numpy_helper

    data, idx, upd = node.input[0], node.input[1], node.input[2]
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    t, mk = f"{node.name}_convlint_mean", onnx.helper.make_node
    for v in (0, 1):
        model.graph.initializer.append(
            numpy_helper.from_array(np.array(v, np.float32), f"{t}_c{v}"))

    def scatter(base: str, values: str, out: str):
        return mk("ScatterElements", [base, idx, values], [out], name=out, axis=axis,
                  reduction="add")

    new = [mk("Shape", [data], [f"{t}_dshape"], name=f"{t}_dshape"),
           mk("Shape", [upd], [f"{t}_ushape"], name=f"{t}_ushape"),
           mk("CastLike", [f"{t}_c0", data], [f"{t}_zero"], name=f"{t}_zero"),
           mk("CastLike", [f"{t}_c1", data], [f"{t}_one"], name=f"{t}_one"),
           mk("Expand", [f"{t}_zero", f"{t}_dshape"], [f"{t}_zeros"], name=f"{t}_zeros"),
           mk("Expand", [f"{t}_one", f"{t}_dshape"], [f"{t}_ones"], name=f"{t}_ones"),
           mk("CastLike", [f"{t}_c1", upd], [f"{t}_uone"], name=f"{t}_uone"),
           mk("Expand", [f"{t}_uone", f"{t}_ushape"], [f"{t}_uones"], name=f"{t}_uones"),
           scatter(data if include_self else f"{t}_zeros", upd, f"{t}_sum"),
           scatter(f"{t}_ones" if include_self else f"{t}_zeros", f"{t}_uones", f"{t}_count"),
           mk("Max", [f"{t}_count", f"{t}_one"], [f"{t}_divisor"], name=f"{t}_divisor"),
           mk("Div", [f"{t}_sum", f"{t}_divisor"], [f"{t}_mean"], name=f"{t}_mean"),
           mk("Greater", [f"{t}_count", f"{t}_zero"], [f"{t}_hit"], name=f"{t}_hit"),
           mk("Where", [f"{t}_hit", f"{t}_mean", data], [node.output[0]], name=node.name)]
    i = list(model.graph.node).index(node)
    model.graph.node.remove(node)
    for k, n in enumerate(new):
        model.graph.node.insert(i + k, n)


def _insert(model, tensor: str, out: str, nodes: list) -> None:
    """Put ``nodes`` (reading ``tensor``, writing ``out``) between ``tensor`` and its readers."""
    producer = next((i for i, n in enumerate(model.graph.node) if tensor in n.output), -1)
    _rewire(model, tensor, out)
    for k, n in enumerate(nodes):  # the new nodes themselves read the original tensor
        for i, x in enumerate(n.input):
            if x == out and k == 0:
                n.input[i] = tensor
        model.graph.node.insert(producer + 1 + k, n)
