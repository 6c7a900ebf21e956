"""Describers: each format's layers in one layout-neutral vocabulary.

The localization stages compare descriptions, never formats: every fact that depends on how a
format spells a layer (which op is a convolution and how its kernel is laid out, how padding,
strides and dilations are written, what an activation clips to, which GELU form it computes, the
epsilon of a BatchNorm, whether activations are NHWC or NCHW) is read here, once, into
``LayerInfo.semantics``. A new format is one describer in ``DESCRIBERS``.

Vocabulary (every key optional):

* ``kernel``: ``{"kind": "conv"|"dense", "layout": one of canonical.TO_CANONICAL or "HWIM",
  "strides", "dilations", "pads" (top, left, bottom, right) | "padding" ("same"|"valid"),
  "groups", "fused_activation"}``
* ``batchnorm``: ``{"eps": float}`` (weights: gamma, beta, moving mean, moving variance)
* ``bounds``: ``(lo, hi)``: the clip an activation (or a fused one) applies
* ``gelu``: ``"tanh"`` or ``"none"``
"""

from __future__ import annotations

import numpy as np

INF = float("inf")
# where a format keeps channels in activations
LAYOUT = {"keras": "NHWC", "savedmodel": "NHWC", "tflite": "NHWC", "onnx": "NCHW",
          "torch-exported": "NCHW", "torchscript": "NCHW"}
TFLITE_ACT = {0: None, 1: (0.0, INF), 2: (-1.0, 1.0), 3: (0.0, 6.0)}


def _pair(v) -> tuple | None:
    if v is None:
        return None
    v = list(v) if isinstance(v, (list, tuple)) else [v, v]
    return tuple(int(x) for x in v[-2:]) if len(v) >= 2 else (int(v[0]), int(v[0]))


def _op_args(layer, op: str) -> list | None:
    return next((o.get("args", []) for o in layer.attributes.get("ops", []) if o.get("op") == op), None)


# --------------------------------------------------------------------------- per format
def keras(layer) -> dict:
    a, op, out = layer.attributes, layer.op_type, {}
    table = {"Conv2D": ("conv", "HWIO"), "DepthwiseConv2D": ("conv", "HWIM"), "Dense": ("dense", "IO")}
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
        if a.get("auto_pad") in ("SAME_UPPER", "SAME_LOWER"):
            kernel["padding"] = "same"
        elif a.get("auto_pad") == "VALID":
            kernel["padding"] = "valid"
        out["kernel"] = kernel
    if op == "Relu":
        out["bounds"] = (0.0, INF)
    elif op == "Clip":
        vals = [float(np.asarray(v)) for v in layer.weights.values()]
        lo = vals[0] if len(vals) > 0 else a.get("min", -INF)
        hi = vals[1] if len(vals) > 1 else a.get("max", INF)
        out["bounds"] = (float(lo), float(hi))
    if op == "Gelu":
        out["gelu"] = "tanh" if a.get("approximate") == "tanh" else "none"
    return out


def torch_exported(layer) -> dict:
    """A module of an ExportedProgram: its aten ops and their arguments (export drops trailing
    defaults, so missing arguments take them)."""
    op, out = layer.op_type, {}
    if op in ("Conv2d", "Linear"):
        kernel: dict[str, object] = {"kind": "conv" if op == "Conv2d" else "dense",
                                     "layout": "OIHW" if op == "Conv2d" else "OI"}
        args = _op_args(layer, "conv2d")
        if args is not None:
            args = list(args) + [None] * 3
            p = (0, 0) if args[1] is None else (None if isinstance(args[1], str) else _pair(args[1]))
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
    return out


def torchscript(layer) -> dict:
    op, a, out = layer.op_type, layer.attributes, {}
    if op in ("Conv2d", "Linear"):
        out["kernel"] = {"kind": "conv" if op == "Conv2d" else "dense",
                         "layout": "OIHW" if op == "Conv2d" else "OI"}
    if op.startswith("BatchNorm"):
        out["batchnorm"] = {"eps": float(a.get("eps", 1e-5))}
    b = {"ReLU": (0.0, INF), "ReLU6": (0.0, 6.0)}.get(op)
    if b:
        out["bounds"] = b
    if op == "GELU":
        out["gelu"] = "tanh" if "tanh" in str(a.get("approximate", "")) else "none"
    return out


DESCRIBERS = {"keras": keras, "savedmodel": keras, "tflite": tflite, "onnx": onnx,
              "torch-exported": torch_exported, "torchscript": torchscript}


def describe(fmt: str, layers: list) -> list:
    """Fill ``semantics`` of each layer of a model in format ``fmt`` (in place); returns them."""
    fn = DESCRIBERS.get(fmt)
    for layer in layers:
        layer.semantics = fn(layer) if fn else {}
    return layers
