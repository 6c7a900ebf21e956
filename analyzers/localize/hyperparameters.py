"""Stage 3: layer hyperparameters. Compare, on aligned layers, what the weights cannot show:
convolution geometry (strides, dilations, padding resolved to pixels per side; the window of
its full output a transposed convolution keeps, whether ONNX spells it with ``output_shape``,
``pads`` or ``output_padding`` and torch with ``padding`` and ``output_padding``), activation
bounds (ReLU, ReLU6, clip min and max) and the described semantics of an op (the axes a softmax
normalizes over, the sign a modulo takes, how a scatter combines values: CL305)."""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np

from convlint.analyzers import rules as R
from convlint.analyzers.localize import graph  # a cycle (graph, structure, here): read at call time
from convlint.analyzers.report.findings import Finding, Location

INF = float("inf")
# descriptions (describe.py) compared as a whole; the ops between a layer's tensor and the op
# that carries one (a layout transpose or reshape around it) are searched this far back
SEMANTICS = ("softmax", "mod", "scatter", "softplus")
SEMANTICS_DEPTH = 6


def _pair(v) -> tuple | None:
    if v is None:
        return None
    v = list(v) if isinstance(v, (list, tuple)) else [v, v]
    return tuple(int(x) for x in v[-2:]) if len(v) >= 2 else (int(v[0]), int(v[0]))


def _same_pads(in_hw, k_hw, s, d) -> tuple:
    out = []
    for n, k, st, dl in zip(in_hw, k_hw, s, d, strict=True):
        total = max((math.ceil(n / st) - 1) * st + (k - 1) * dl + 1 - n, 0)
        out.append((total // 2, total - total // 2))
    return (out[0][0], out[1][0], out[0][1], out[1][1])  # top, left, bottom, right


def geometry(k, in_hw: tuple | None) -> dict:
    """``{"strides", "dilations", "pads"}`` of a kernel, pads as (top, left, bottom, right):
    explicit pads as described, or SAME/VALID padding resolved to pixels at ``in_hw``."""
    a = k.attrs
    strides, dil = _pair(a.get("strides")) or (1, 1), _pair(a.get("dilations")) or (1, 1)
    pads = tuple(a["pads"]) if a.get("pads") is not None else None
    if pads is None and a.get("padding") == "valid":
        pads = (0, 0, 0, 0)
    elif pads is None and a.get("padding") == "same" and in_hw:
        pads = _same_pads(in_hw, k.weight.shape[2:], strides, dil)
    return {"strides": strides, "dilations": dil, "pads": pads}


def _input_hw(layer_inputs, runs: dict, nchw: bool) -> tuple | None:
    for name in layer_inputs:
        x = runs.get(name)
        if x is not None and np.ndim(x) == 4:
            return tuple(np.shape(x)[2:4]) if nchw else tuple(np.shape(x)[1:3])
    return None


def conv_stage(matches, src_layers, tgt_layers, layouts: tuple, src_run, tgt_run) -> list:
    """``layouts``: where each model keeps channels (``"NHWC"`` or ``"NCHW"``)."""
    src_by, tgt_by = {x.name: x for x in src_layers}, {x.name: x for x in tgt_layers}
    src_nchw, tgt_nchw = (lay == "NCHW" for lay in layouts)
    findings = []
    for m in matches:
        if m.source.kind == "deconv" == m.target.kind:
            findings += _deconv(m)
        if m.source.kind != "conv" or m.source.weight.ndim != 4:
            continue
        t_in = (
            _input_hw(tgt_by[m.target.layer].inputs, tgt_run, tgt_nchw)
            if m.target.layer in tgt_by
            else None
        )
        s_layer = src_by.get(m.source.layer)
        s_in = _input_hw(s_layer.inputs, src_run, src_nchw) if s_layer else None
        gs = geometry(m.source, s_in or t_in)
        gt = geometry(m.target, t_in or s_in)
        for attr in ("strides", "dilations", "pads"):
            if gs.get(attr) is None or gt.get(attr) is None or tuple(gs[attr]) == tuple(gt[attr]):
                continue
            name = {"pads": "padding (top, left, bottom, right)", "strides": "strides",
                    "dilations": "dilations"}[attr]
            findings.append(Finding(
                R.CONV_GEOMETRY.code, "error", "hyperparameters",
                f"{m.source.layer} {name} is {tuple(gs[attr])} in the source but {tuple(gt[attr])} "
                f"in the target", layer=m.source.layer,
                location=Location(source_node=m.source.layer, target_node=m.target.layer),
                evidence={"attribute": attr, "source": list(gs[attr]), "target": list(gt[attr])}))
    return findings


def _crop(attrs: dict) -> tuple | None:
    """What a transposed convolution keeps of its full output: the pixels cropped off (top,
    left) and the rows and columns taken off (bottom, right) once ``output_padding`` is added
    back at the end; the one spelling ONNX (pads, output_shape, output_padding) and torch
    (padding, output_padding) share."""
    pads, extra = attrs.get("pads"), attrs.get("output_padding") or (0, 0)
    if pads is None:
        return None
    top, left, bottom, right = (int(p) for p in pads)
    return (top, left, bottom - int(extra[0]), right - int(extra[1]))


def _deconv(m) -> list:
    """CL305 when the target's transposed convolution keeps another window of its full output
    than the source's (an ``output_shape`` ignored, ``output_padding`` dropped): ``changes``
    are the source's window in attributes a target sets, symmetric ``pads`` with
    ``output_padding`` where they can say it (torch pads both sides alike)."""
    s, t = _crop(m.source.attrs), _crop(m.target.attrs)
    if s is None or t is None or s == t:
        return []
    top, left, bottom, right = s
    extra = [top - bottom, left - right]
    if min(extra) >= 0:
        changes = [["pads", [top, left, top, left]], ["output_padding", extra]]
    else:
        changes = [["pads", list(s)], ["output_padding", [0, 0]]]
    have = m.target.attrs
    now = {"pads": list(have.get("pads") or ()), "output_padding": list(have.get("output_padding")
                                                                       or (0, 0))}
    differ = [a for a, v in changes if now[a] != v]
    given = m.source.attrs.get("output_shape")
    spelled = f" (output_shape {list(given)})" if given is not None else ""
    return [Finding(
        R.OP_SEMANTICS.code, "error", "hyperparameters",
        f"{m.source.layer}: the source's transposed convolution{spelled} crops {s} (top, left, "
        f"bottom, right) off its full output, the target's {m.target.layer} crops {t} (pads "
        f"{now['pads']}, output_padding {now['output_padding']}): it needs "
        + ", ".join(f"{a} {v}" for a, v in changes), layer=m.source.layer,
        location=Location(source_node=m.source.layer, target_node=m.target.layer),
        hyperparameter=", ".join(differ),
        evidence={"node": m.target.layer, "changes": changes, "source": {"crop": list(s)},
                  "target": {"crop": list(t)}, "attributes": differ})]


# --------------------------------------------------------------------------- activations
def layer_bounds(layer) -> tuple | None:
    """The (lo, hi) clip of an activation layer or op, or of the activation fused into it."""
    b = layer.semantics.get("bounds")
    return tuple(b) if b is not None else None


def _walk_back(start, producer: dict, depth: int, stop: Collection = ()):
    """``start`` and the ops that compute its inputs, nearest first, ``depth`` at most, never
    past a tensor in ``stop``."""
    seen, stack = set(), [start]
    while stack and len(seen) < depth:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        yield n
        stack.extend(producer[i] for i in n.inputs if i in producer and i not in stop)


def target_gelu(node, producer: dict, depth: int = 10) -> str | None:
    """'tanh' or 'none' from the ops that compute ``node``'s output (Erf, Tanh, Gelu)."""
    for n in _walk_back(node, producer, depth):
        if n.semantics.get("gelu"):
            return n.semantics["gelu"]
        if n.op_type in ("Erf", "Erfc"):
            return "none"
        if n.op_type in ("Tanh", "TANH"):
            return "tanh"
    return None


def activation_stage(acts, src_layers, tgt_layers) -> list:
    """Compare the bounds of each source activation with the target op producing its tensor."""
    producer = {}
    for node in tgt_layers:
        for o in node.outputs:
            producer[o] = node
    src_by = {x.name: x for x in src_layers}
    reproduced = {a.target for a in acts if a.target is not None and a.rel_err <= graph.LAYER_RTOL}
    findings = []
    for a in acts:
        layer = src_by.get(a.source)
        if layer is None or a.target is None or a.target not in producer:
            continue
        if a.rel_err > graph.LAYER_RTOL:
            findings += semantics_findings(layer, producer[a.target], producer, reproduced)
        g = layer.semantics.get("gelu")
        if g is not None:
            tg = target_gelu(producer[a.target], producer)
            if tg is not None and tg != g:
                findings.append(Finding(
                    R.GELU_APPROXIMATION.code, "error", "hyperparameters",
                    f"{layer.name} is GELU with approximate='{g}' in the source but the target "
                    f"computes approximate='{tg}'", layer=layer.name,
                    location=Location(source_node=layer.name, target_node=producer[a.target].name),
                    evidence={"source": g, "target": tg}))
            continue
        sb = layer_bounds(layer)
        tb = layer_bounds(producer[a.target])
        if sb is None or tb is None or np.allclose(sb, tb, rtol=1e-6, atol=1e-6):
            continue
        node = producer[a.target]
        findings.append(Finding(
            R.ACTIVATION_BOUNDS.code, "error", "hyperparameters",
            f"{layer.name} clips to {_fmt(sb)} in the source but {node.name} clips to {_fmt(tb)} "
            f"in the target", layer=layer.name,
            location=Location(source_node=layer.name, target_node=node.name),
            evidence={"source": list(sb), "target": list(tb)}))
    return findings


def _carrier(start, key: str, producer: dict, stop: set):
    """The target op describing ``key`` that computes ``start``'s output: ``start`` or one
    of the ops before it, never past a tensor an earlier layer is reproduced in."""
    return next((n for n in _walk_back(start, producer, SEMANTICS_DEPTH, stop)
                 if key in n.semantics), None)


def semantics_findings(layer, start, producer: dict, stop: set) -> list:
    """CL305 for each description of the source ``layer`` that the target op computing it
    states otherwise. Called only where the layer's output is not reproduced: one op's
    description can differ from the source's while the target spells the same computation with
    several ops (a softmax over a flattened tensor), and that is no fault."""
    out = []
    for key in SEMANTICS:
        want = layer.semantics.get(key)
        if want is None:
            continue
        node = _carrier(start, key, producer, stop)
        if node is None or node.semantics[key] == want:
            continue
        have = node.semantics[key]
        desc = "; ".join(f"{k} {v!r} in the source, {have.get(k)!r} in the target"
                         for k, v in want.items() if have.get(k) != v)
        out.append(Finding(
            R.OP_SEMANTICS.code, "error", "hyperparameters",
            f"{layer.name}: the target's {node.name} ({node.op_type}) computes it with other "
            f"{key} semantics than the source's {layer.op_type} ({desc})", layer=layer.name,
            location=Location(source_node=layer.name, target_node=node.name),
            evidence={"node": node.name, "op": node.op_type, "semantics": key,
                      "changes": [[k, v] for k, v in want.items()], "source": dict(want),
                      "target": dict(have)}))
    return out


def _fmt(b) -> str:
    return "[" + ", ".join("inf" if v == INF else f"{v:g}" for v in b) + "]"
