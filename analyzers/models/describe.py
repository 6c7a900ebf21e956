"""Describers: each format's layers in one layout-neutral vocabulary.

The localization stages compare descriptions, never formats: every fact that depends on how a
format spells a layer (which op is a convolution and how its kernel is laid out, how padding,
strides and dilations are written, what an activation clips to, which GELU form it computes, the
epsilon of a BatchNorm, whether activations are NHWC or NCHW) is read here, once, into
``LayerInfo.semantics``. A new format is one describer in ``DESCRIBERS``.

Vocabulary (every key optional):

* ``kernel``: ``{"kind": "conv"|"deconv"|"dense", "layout": one of canonical.TO_CANONICAL or
  "HWIM", "strides", "dilations", "pads" (top, left, bottom, right) | "padding"
  ("same"|"valid"), "groups", "fused_activation"}``; a transposed convolution's ``pads`` are
  cropped off its full output and its ``output_padding`` (h, w) added at the end
* ``batchnorm``: ``{"eps": float}`` (weights: gamma, beta, moving mean, moving variance)
* ``bounds``: ``(lo, hi)``: the clip an activation (or a fused one) applies
* ``gelu``: ``"tanh"`` or ``"none"``
* ``softmax``: ``{"normalized_axes": n}``: how many (trailing) axes a softmax-like op normalizes
  over jointly; a count, so NHWC and NCHW spell it alike (ONNX before opset 13 flattens from
  ``axis`` on: n = rank - axis)
* ``mod``: ``{"fmod": 1}`` when the remainder takes the dividend's sign (C fmod), 0 for the
  divisor's (floor mod)
* ``scatter``: ``{"reduction": "none"|"add"|"mul"|"max"|"min"|"mean", "include_self": bool}``:
  how values scattered to one position combine, and whether the tensor's own value joins them

Each of the last three is compared as a whole by the hyperparameter stage (CL305), whose
``changes`` are its source attributes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

INF = float("inf")
# where a format keeps channels in activations
LAYOUT = {"keras": "NHWC", "savedmodel": "NHWC", "tflite": "NHWC", "onnx": "NCHW",
          "torch-exported": "NCHW", "torchscript": "NCHW", "openvino": "NCHW",
          "executorch": "NCHW"}
TFLITE_ACT = {0: None, 1: (0.0, INF), 2: (-1.0, 1.0), 3: (0.0, 6.0)}
# torch's scatter_reduce names -> ONNX ScatterElements reductions
TORCH_REDUCE = {"sum": "add", "prod": "mul", "amax": "max", "amin": "min", "mean": "mean",
                "add": "add", "multiply": "mul"}


def _pair(v) -> tuple | None:
    if v is None:
        return None
    v = list(v) if isinstance(v, (list, tuple)) else [v, v]
    return tuple(int(x) for x in v[-2:]) if len(v) >= 2 else (int(v[0]), int(v[0]))


def _auto_pad(a: dict) -> str | None:
    """``same`` or ``valid`` from an ``auto_pad`` attribute (ONNX spells it SAME_UPPER, SAME_LOWER,
    VALID; OpenVINO same_upper, same_lower, valid), None for explicit pads."""
    return {"same_upper": "same", "same_lower": "same", "valid": "valid"}.get(
        str(a.get("auto_pad", "")).lower())


def _op_args(layer, op: str) -> list | None:
    return next(
        (o.get("args", []) for o in layer.attributes.get("ops", []) if o.get("op") == op), None
    )


# --------------------------------------------------------------------------- per format
def keras(layer) -> dict:
    a, op, out = layer.attributes, layer.op_type, {}
    table = {
        "Conv2D": ("conv", "HWIO"),
        "DepthwiseConv2D": ("conv", "HWIM"),
        "Dense": ("dense", "IO"),
    }
    if op in table:
        kind, layout = table[op]
        out["kernel"] = {"kind": kind, "layout": layout, "strides": _pair(a.get("strides")),
                         "dilations": _pair(a.get("dilation_rate")), "padding": a.get("padding"),
                         "groups": a.get("groups", 1)}
    if op.startswith("BatchNormalization"):
        out["batchnorm"] = {"eps": float(a.get("epsilon", 1e-3))}
    if op == "ReLU":
        if not (a.get("negative_slope") or a.get("threshold")):
            mx = a.get("max_value")
            out["bounds"] = (0.0, INF if mx is None else float(mx))
    elif op == "Activation" or a.get("activation") not in (None, "linear"):
        b = {"relu": (0.0, INF), "relu6": (0.0, 6.0)}.get(a.get("activation"))
        if b:
            out["bounds"] = b
    if a.get("activation") == "gelu":
        out["gelu"] = "none"
    return out


def tflite(layer) -> dict:
    a, op, out = layer.attributes, layer.op_type, {}
    table = {"CONV_2D": ("conv", "OHWI"), "DEPTHWISE_CONV_2D": ("conv", "1HWC"),
             "FULLY_CONNECTED": ("dense", "OI")}
    if op in table:
        kind, layout = table[op]
        out["kernel"] = {"kind": kind, "layout": layout,
                         "strides": (a.get("StrideH"), a.get("StrideW")),
                         "dilations": (a.get("DilationHFactor"), a.get("DilationWFactor")),
                         "padding": {0: "same", 1: "valid"}.get(a.get("Padding"), a.get("Padding")),
                         "fused_activation": a.get("FusedActivationFunction")}
    if op == "RELU":
        out["bounds"] = (0.0, INF)
    elif op == "RELU6":
        out["bounds"] = (0.0, 6.0)
    elif TFLITE_ACT.get(a.get("FusedActivationFunction")):
        out["bounds"] = TFLITE_ACT[a.get("FusedActivationFunction")]
    if op == "GELU":
        out["gelu"] = "tanh" if a.get("Approximate") else "none"
    if op in ("SOFTMAX", "LOG_SOFTMAX"):  # always over the last axis alone
        out["softmax"] = {"normalized_axes": 1}
    elif op == "FLOOR_MOD":
        out["mod"] = {"fmod": 0}
    return out


def onnx(layer) -> dict:
    a, op, out = layer.attributes, layer.op_type, {}
    items = list(layer.weights.values())
    kernel: dict[str, object] | None = None
    if op == "Conv":
        kernel = {"kind": "conv", "layout": "OIHW"}
    elif op == "Gemm" and items:
        kernel = {"kind": "dense", "layout": "OI" if a.get("transB") else "IO"}
    elif op == "MatMul" and items and np.ndim(items[0]) == 2:
        kernel = {"kind": "dense", "layout": "IO"}
    if kernel is not None:
        pads = a.get("pads")
        if pads is not None and len(pads) == 4:
            pads = (pads[0], pads[1], pads[2], pads[3])
        elif kernel["kind"] == "conv":
            pads = (0, 0, 0, 0) if a.get("auto_pad") in (None, "NOTSET") else None
        kernel.update(strides=_pair(a.get("strides")), dilations=_pair(a.get("dilations")),
                      pads=pads, groups=a.get("group", 1))
        if _auto_pad(a) is not None:
            kernel["padding"] = _auto_pad(a)
        out["kernel"] = kernel
    elif op == "ConvTranspose" and items and np.ndim(items[0]) == 4:
        out["kernel"] = _onnx_deconv(a, np.shape(items[0]))
    if op == "Relu":
        out["bounds"] = (0.0, INF)
    elif op == "Clip":
        vals = [float(np.asarray(v)) for v in layer.weights.values()]
        lo = vals[0] if len(vals) > 0 else a.get("min", -INF)
        hi = vals[1] if len(vals) > 1 else a.get("max", INF)
        out["bounds"] = (float(lo), float(hi))
    if op == "Gelu":
        out["gelu"] = "tanh" if a.get("approximate") == "tanh" else "none"
    if op in ("Softmax", "LogSoftmax", "Hardmax"):
        n = _onnx_normalized_axes(a)
        if n is not None:
            out["softmax"] = {"normalized_axes": n}
    elif op == "Mod":
        out["mod"] = {"fmod": int(a.get("fmod", 0))}
    elif op == "Softplus":
        out["softplus"] = {"threshold": None}  # smooth everywhere: no linear branch
    elif op in ("ScatterElements", "ScatterND", "Scatter"):
        r = a.get("reduction", "none")
        out["scatter"] = {"reduction": r, "include_self": r != "none"}  # add..min fold data in
    return out


def _onnx_deconv(a: dict, w_shape: tuple) -> dict:
    """A ConvTranspose as pixels cropped off each side of its full output (``pads``, top, left,
    bottom, right) and rows and columns added at the end (``output_padding``). Given an
    ``output_shape``, the crop follows from the input's size: ONNX pads the difference at the
    end for SAME_UPPER, else at the start."""
    strides, dil = _pair(a.get("strides")) or (1, 1), _pair(a.get("dilations")) or (1, 1)
    extra = _pair(a.get("output_padding")) or (0, 0)
    pads = a.get("pads")
    pads = tuple(int(p) for p in pads) if pads is not None and len(pads) == 4 else None
    if pads is None and a.get("auto_pad") in (None, "NOTSET"):
        pads = (0, 0, 0, 0)
    shape, x = a.get("output_shape"), a.get("input_shape")
    if shape is not None:
        pads = None
        if x is not None and len(x) == 4 and None not in x[2:]:
            begin, end = [], []
            for n, k, s, d, e, o in zip(x[2:], w_shape[2:], strides, dil, extra, list(shape)[-2:],
                                        strict=True):
                total = s * (n - 1) + e + (k - 1) * d + 1 - o
                head = total // 2 if a.get("auto_pad") == "SAME_UPPER" else total - total // 2
                begin.append(head)
                end.append(total - head)
            pads = (begin[0], begin[1], end[0], end[1])
    return {"kind": "deconv", "layout": "IOHW", "strides": strides, "dilations": dil,
            "pads": pads, "output_padding": extra, "groups": a.get("group", 1),
            "output_shape": shape}


def _onnx_normalized_axes(a: dict) -> int | None:
    """Before opset 13 (the runner records ``opset`` and ``input_rank`` then) a softmax
    normalizes over every axis from ``axis`` (default 1) on; from 13 over ``axis`` alone."""
    if a.get("opset") is None:
        return 1
    axis, rank = int(a.get("axis", 1)), a.get("input_rank")
    if axis < 0:
        return -axis
    return rank - axis if rank else None


def torch_exported(layer) -> dict:
    """A module of an ExportedProgram: its aten ops and their arguments (export drops trailing
    defaults, so missing arguments take them)."""
    op, out = layer.op_type, {}
    if op == "ConvTranspose2d":
        out["kernel"] = _torch_deconv(_op_args(layer, "conv_transpose2d"))
    if op in ("Conv2d", "Linear"):
        kernel: dict[str, object] = {"kind": "conv" if op == "Conv2d" else "dense",
                                     "layout": "OIHW" if op == "Conv2d" else "OI"}
        args = _op_args(layer, "conv2d")
        if args is not None:
            args = list(args) + [None] * 3
            p = (
                (0, 0)
                if args[1] is None
                else (None if isinstance(args[1], str) else _pair(args[1]))
            )
            kernel.update(strides=_pair(args[0]) or (1, 1), dilations=_pair(args[2]) or (1, 1),
                          pads=(p[0], p[1], p[0], p[1]) if p else None)
            if isinstance(args[1], str):
                kernel["padding"] = args[1]
        out["kernel"] = kernel
    if op.startswith("BatchNorm"):
        args = _op_args(layer, "batch_norm")
        eps = layer.attributes.get("eps", 1e-5)
        if args is not None and len(args) >= 3:
            eps = args[2]
        out["batchnorm"] = {"eps": float(eps)}
    hard = _op_args(layer, "hardtanh")
    if hard is not None and len(hard) >= 2:
        out["bounds"] = (float(hard[0]), float(hard[1]))
    elif _op_args(layer, "relu") is not None or _op_args(layer, "relu_") is not None:
        out["bounds"] = (0.0, INF)
    gelu = _op_args(layer, "gelu")
    if gelu is not None:
        out["gelu"] = "tanh" if any("tanh" in str(x) for x in gelu) else "none"
    if any(_op_args(layer, s) is not None for s in ("softmax", "_softmax", "log_softmax")):
        out["softmax"] = {"normalized_axes": 1}  # one dim
    if _op_args(layer, "fmod") is not None:
        out["mod"] = {"fmod": 1}
    elif _op_args(layer, "remainder") is not None:
        out["mod"] = {"fmod": 0}
    scatter = _torch_scatter(layer)
    if scatter is not None:
        out["scatter"] = scatter
    sp = _op_args(layer, "softplus")
    if sp is not None:  # softplus(x, beta=1, threshold=20): x itself where beta * x > threshold
        t = sp[1] if len(sp) > 1 else 20.0
        out["softplus"] = {"threshold": float(t) if isinstance(t, (int, float)) else None}
    return out


def _torch_deconv(args: list | None) -> dict:
    """``conv_transpose2d(x, w, b, stride, padding, output_padding, groups, dilation)``: torch
    crops ``padding`` off every side and adds ``output_padding`` at the end (``_onnx_deconv``'s
    terms). Export drops trailing defaults."""
    kernel: dict[str, object] = {"kind": "deconv", "layout": "IOHW"}
    if args is None:
        return kernel
    stride, padding, extra, groups, dil = (list(args) + [None] * 5)[:5]
    p = _pair(padding) or (0, 0)
    kernel.update(strides=_pair(stride) or (1, 1), dilations=_pair(dil) or (1, 1),
                  pads=(p[0], p[1], p[0], p[1]), output_padding=_pair(extra) or (0, 0),
                  groups=groups if isinstance(groups, int) else 1)
    return kernel


def _torch_scatter(layer) -> dict | None:
    """scatter_reduce(dim, reduce, include_self=True), scatter_add, scatter(dim[, reduce]):
    export keeps the reduce name and drops include_self when it is the default."""
    args = _op_args(layer, "scatter_reduce")
    if args is not None:
        names = [x for x in args if isinstance(x, str) and x in TORCH_REDUCE]
        off = any(x is False or str(x).replace(" ", "") == "include_self=False" for x in args)
        return {"reduction": TORCH_REDUCE[names[0]] if names else "none", "include_self": not off}
    if _op_args(layer, "scatter_add") is not None:
        return {"reduction": "add", "include_self": True}
    args = _op_args(layer, "scatter")
    if args is not None:
        r = next((TORCH_REDUCE[x] for x in args if isinstance(x, str) and x in TORCH_REDUCE),
                 "none")
        return {"reduction": r, "include_self": r != "none"}
    return None


def torchscript(layer) -> dict:
    """A script module: its class, and for a convolution the geometry the runner read off its
    forward graph's ``aten::_convolution`` (tracing keeps no attribute for it)."""
    op, a, out = layer.op_type, layer.attributes, {}
    kernel: dict[str, Any] = {"kind": "conv" if op == "Conv2d" else "dense",
                              "layout": "OIHW" if op == "Conv2d" else "OI"}
    if op in ("Conv2d", "Linear"):
        out["kernel"] = kernel
    conv = a.get("conv") or {}
    if op == "Conv2d" and conv and not conv.get("transposed"):
        p = _pair(conv.get("padding"))
        kernel.update(strides=_pair(conv.get("stride")), dilations=_pair(conv.get("dilation")),
                      pads=(p[0], p[1], p[0], p[1]) if p else None, groups=conv.get("groups", 1))
    if op.startswith("BatchNorm"):
        out["batchnorm"] = {"eps": float(a.get("eps", 1e-5))}
    b = {"ReLU": (0.0, INF), "ReLU6": (0.0, 6.0)}.get(op)
    if b:
        out["bounds"] = b
    if op == "GELU":
        out["gelu"] = "tanh" if "tanh" in str(a.get("approximate", "")) else "none"
    return out


def openvino(layer) -> dict:
    """An OpenVINO IR operation (opset names): a Convolution's geometry (``pads_begin`` and
    ``pads_end`` per spatial axis), a MatMul with a constant as a dense kernel, activation
    bounds."""
    a, op, out = layer.attributes, layer.op_type, {}
    items = list(layer.weights.values())
    if op == "Convolution" and items and np.ndim(items[0]) == 4:
        b, e = list(a.get("pads_begin") or (0, 0)), list(a.get("pads_end") or (0, 0))
        kernel: dict[str, object] = {
            "kind": "conv", "layout": "OIHW", "strides": _pair(a.get("strides")),
            "dilations": _pair(a.get("dilations")), "groups": 1,
            "pads": (b[0], b[1], e[0], e[1]) if len(b) == 2 and len(e) == 2 else None}
        if _auto_pad(a) is not None:
            kernel["padding"] = _auto_pad(a)
        out["kernel"] = kernel
    elif op == "MatMul" and items and np.ndim(items[0]) == 2:
        out["kernel"] = {"kind": "dense", "layout": "OI" if a.get("transpose_b") else "IO"}
    if op == "Relu":
        out["bounds"] = (0.0, INF)
    elif op == "Clamp":
        out["bounds"] = (float(a.get("min", -INF)), float(a.get("max", INF)))
    elif op == "Softmax":
        out["softmax"] = {"normalized_axes": 1}
    return out


def executorch(layer) -> dict:
    """A kernel call of an ExecuTorch program (edge-dialect aten names, out variants): a
    convolution's geometry from its scalar arguments, addmm/mm/linear with a constant as a dense
    kernel (stored OI, transposed by the program at run time, or IO), activation bounds."""
    op, out = layer.op_type, {}
    args = [x for x in layer.attributes.get("args", []) if x is not None]
    items = list(layer.weights.values())
    if op.startswith("convolution") and items and np.ndim(items[0]) == 4 and len(args) >= 6:
        stride, pad, dil, transposed, _, groups = args[:6]
        if not transposed:
            p = _pair(pad) or (0, 0)
            out["kernel"] = {"kind": "conv", "layout": "OIHW", "strides": _pair(stride),
                             "dilations": _pair(dil), "groups": int(groups),
                             "pads": (p[0], p[1], p[0], p[1])}
    elif op in ("addmm", "mm", "linear") and items and np.ndim(items[0]) == 2:
        transposed = op == "linear" or layer.attributes.get("transposed_weight")
        out["kernel"] = {"kind": "dense", "layout": "OI" if transposed else "IO"}
    if op == "relu":
        out["bounds"] = (0.0, INF)
    elif op == "hardtanh" and len(args) >= 2:
        out["bounds"] = (float(args[0]), float(args[1]))
    elif op in ("_softmax", "softmax", "_log_softmax"):
        out["softmax"] = {"normalized_axes": 1}
    return out


DESCRIBERS = {"keras": keras, "savedmodel": keras, "tflite": tflite, "onnx": onnx,
              "torch-exported": torch_exported, "torchscript": torchscript, "openvino": openvino,
              "executorch": executorch}


def describe(fmt: str, layers: list) -> list:
    """Fill ``semantics`` of each layer of a model in format ``fmt`` (in place); returns them."""
    fn = DESCRIBERS.get(fmt)
    for layer in layers:
        layer.semantics = fn(layer) if fn else {}
    return layers
