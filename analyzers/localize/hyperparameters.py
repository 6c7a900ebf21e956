"""Stage 3: layer hyperparameters. Compare, on aligned layers, what the weights cannot show:
convolution geometry (strides, dilations, padding resolved to pixels per side) and activation
bounds (ReLU, ReLU6, clip min and max)."""

from __future__ import annotations

import math

import numpy as np

from convlint.analyzers import rules as R
from convlint.analyzers.report.findings import Finding, Location

INF = float("inf")
TFLITE_ACT = {0: None, 1: (0.0, INF), 2: (-1.0, 1.0), 3: (0.0, 6.0)}


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


def geometry(k, fmt: str, in_hw: tuple | None) -> dict:
    """``{"strides", "dilations", "pads"}`` of a kernel, pads as (top, left, bottom, right)."""
    a = k.attrs
    if fmt in ("torch-exported",):
        # aten.conv2d(x, w, b, stride=1, padding=0, dilation=1, groups=1): export drops
        # trailing defaults, so missing args take them
        args = next((o["args"] for o in a.get("ops", []) if o.get("op") == "conv2d"), None)
        if args is None:
            return {}
        args = list(args) + [None] * 3
        p = (0, 0) if args[1] is None else (None if isinstance(args[1], str) else _pair(args[1]))
        return {"strides": _pair(args[0]) or (1, 1), "dilations": _pair(args[2]) or (1, 1),
                "pads": (p[0], p[1], p[0], p[1]) if p else None}
    strides, dil = _pair(a.get("strides")) or (1, 1), _pair(a.get("dilations")) or (1, 1)
    pads = None
    if a.get("pads") is not None:
        p = list(a["pads"])
        pads = (p[0], p[1], p[2], p[3]) if len(p) == 4 else None
    elif a.get("padding") == "valid":
        pads = (0, 0, 0, 0)
    elif a.get("padding") == "same" and in_hw:
        pads = _same_pads(in_hw, k.weight.shape[2:], strides, dil)
    elif fmt == "onnx" and k.kind == "conv":
        pads = (0, 0, 0, 0)
    return {"strides": strides, "dilations": dil, "pads": pads}


def _input_hw(layer_inputs, runs: dict, nchw: bool) -> tuple | None:
    for name in layer_inputs:
        x = runs.get(name)
        if x is not None and np.ndim(x) == 4:
            return tuple(np.shape(x)[2:4]) if nchw else tuple(np.shape(x)[1:3])
    return None


def conv_stage(matches, src_layers, tgt_layers, src_fmt, tgt_fmt, src_run, tgt_run) -> list:
    src_by, tgt_by = {x.name: x for x in src_layers}, {x.name: x for x in tgt_layers}
    findings = []
    for m in matches:
        if m.source.kind != "conv" or m.source.weight.ndim != 4:
            continue
        t_in = _input_hw(tgt_by[m.target.layer].inputs, tgt_run, tgt_fmt == "onnx") if m.target.layer in tgt_by else None
        s_layer = src_by.get(m.source.layer)
        s_in = _input_hw(s_layer.inputs, src_run, src_fmt in ("torch-exported", "torchscript", "onnx")) if s_layer else None
        gs = geometry(m.source, src_fmt, s_in or t_in)
        gt = geometry(m.target, tgt_fmt, t_in or s_in)
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


# --------------------------------------------------------------------------- activations
def source_bounds(layer, fmt: str) -> tuple | None:
    a = layer.attributes
    if fmt == "keras" and layer.op_type == "ReLU":
        if a.get("negative_slope") or a.get("threshold"):
            return None
        mx = a.get("max_value")
        return (0.0, INF if mx is None else float(mx))
    if fmt == "keras" and (layer.op_type == "Activation" or a.get("activation") not in (None, "linear")):
        return {"relu": (0.0, INF), "relu6": (0.0, 6.0)}.get(a.get("activation"))
    if fmt in ("torch-exported",):
        for o in a.get("ops", []):
            if o.get("op") == "hardtanh" and len(o.get("args", [])) >= 2:
                return (float(o["args"][0]), float(o["args"][1]))
            if o.get("op") in ("relu", "relu_"):
                return (0.0, INF)
    if fmt == "torchscript":
        return {"ReLU": (0.0, INF), "ReLU6": (0.0, 6.0)}.get(layer.op_type)
    return None


def target_bounds(node, fmt: str) -> tuple | None:
    if fmt == "onnx":
        if node.op_type == "Relu":
            return (0.0, INF)
        if node.op_type == "Clip":
            vals = [float(np.asarray(v)) for v in node.weights.values()]
            lo = vals[0] if len(vals) > 0 else node.attributes.get("min", -INF)
            hi = vals[1] if len(vals) > 1 else node.attributes.get("max", INF)
            return (float(lo), float(hi))
    if fmt == "tflite":
        if node.op_type == "RELU":
            return (0.0, INF)
        if node.op_type == "RELU6":
            return (0.0, 6.0)
        return TFLITE_ACT.get(node.attributes.get("FusedActivationFunction"))
    return None


def layer_bounds(layer, fmt: str) -> tuple | None:
    """The (lo, hi) clip of an activation layer or op of a model in format ``fmt``."""
    return target_bounds(layer, fmt) if fmt in ("onnx", "tflite") else source_bounds(layer, fmt)


def source_gelu(layer, fmt: str) -> str | None:
    """'tanh' or 'none' for a GELU layer of the source, else None."""
    a = layer.attributes
    for o in a.get("ops", []):
        if o.get("op") == "gelu":
            args = [str(x) for x in o.get("args", [])]
            return "tanh" if any("tanh" in x for x in args) else "none"
    if layer.op_type == "GELU" and fmt == "torchscript":
        return "tanh" if "tanh" in str(a.get("approximate", "")) else "none"
    if fmt == "keras" and a.get("activation") == "gelu":
        return "none"
    if fmt == "tflite" and layer.op_type == "GELU":
        return "tanh" if a.get("Approximate") else "none"
    return None


def target_gelu(node, producer: dict, depth: int = 10) -> str | None:
    """'tanh' or 'none' from the ops that compute ``node``'s output (Erf, Tanh, Gelu)."""
    seen, stack = set(), [node]
    while stack and len(seen) < depth:
        n = stack.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        if n.op_type == "Gelu":
            return "tanh" if n.attributes.get("approximate") == "tanh" else "none"
        if n.op_type == "GELU":
            return "tanh" if n.attributes.get("Approximate") else "none"
        if n.op_type in ("Erf", "Erfc"):
            return "none"
        if n.op_type in ("Tanh", "TANH"):
            return "tanh"
        stack.extend(producer[i] for i in n.inputs if i in producer)
    return None


def activation_stage(acts, src_layers, tgt_layers, src_fmt, tgt_fmt) -> list:
    """Compare the bounds of each source activation with the target op producing its tensor."""
    producer = {}
    for node in tgt_layers:
        for o in node.outputs:
            producer[o] = node
    src_by = {x.name: x for x in src_layers}
    findings = []
    for a in acts:
        layer = src_by.get(a.source)
        if layer is None or a.target is None or a.target not in producer:
            continue
        g = source_gelu(layer, src_fmt)
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
        sb = layer_bounds(layer, src_fmt)
        tb = target_bounds(producer[a.target], tgt_fmt)
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


def _fmt(b) -> str:
    return "[" + ", ".join("inf" if v == INF else f"{v:g}" for v in b) + "]"
