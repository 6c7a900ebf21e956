"""Weight-bearing layers of every format, in one canonical layout.

Canonical kernels: convolutions as OIHW (depthwise as ``(C*M, 1, H, W)``), dense layers as
``(out, in)``. Quantized weights are dequantized (the stored dtype is kept as evidence). Each
:class:`Kernel` remembers its native layout so that a repair can write weights back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# native layout -> transpose that gives the canonical layout
TO_CANONICAL = {
    "HWIO": (3, 2, 0, 1),   # Keras Conv2D
    "OHWI": (0, 3, 1, 2),   # TFLite CONV_2D
    "1HWC": (3, 0, 1, 2),   # TFLite DEPTHWISE_CONV_2D -> (C, 1, H, W)
    "OIHW": (0, 1, 2, 3),   # ONNX Conv, torch Conv2d
    "IOHW": (1, 0, 2, 3),   # ONNX ConvTranspose, torch ConvTranspose2d (one group)
    "IO": (1, 0),           # Keras Dense, ONNX MatMul, Gemm without transB
    "OI": (0, 1),           # torch Linear, TFLite FULLY_CONNECTED, Gemm with transB
}


@dataclass
class Kernel:
    layer: str                 # layer or node name in its own model
    kind: str                  # "conv", "deconv" or "dense"
    weight: np.ndarray         # canonical, float64, dequantized
    bias: np.ndarray | None
    weight_name: str
    bias_name: str | None
    # native layout (a key of TO_CANONICAL, or "HWIM" for Keras depthwise)
    layout: str
    stored_dtype: str          # dtype as stored in the file
    quant: dict | None = None  # scales, zero points, axis, for quantized storage
    attrs: dict = field(default_factory=dict)  # strides, dilations, groups, padding
    bn: dict | None = None     # a following BatchNorm: gamma, beta, mean, var, eps
    outputs: list = field(default_factory=list)
    index: int = 0             # position in the model's layer table

    def folded(self) -> tuple:
        """(weight, bias) with the following BatchNorm folded in, or as they are."""
        if not self.bn:
            return self.weight, self.bias
        bn = self.bn
        s = bn["gamma"] / np.sqrt(bn["var"] + bn["eps"])
        w = self.weight * s.reshape((-1,) + (1,) * (self.weight.ndim - 1))
        b = self.bias if self.bias is not None else np.zeros_like(s)
        return w, (b - bn["mean"]) * s + bn["beta"]


def to_native(w: np.ndarray, layout: str) -> np.ndarray:
    """The inverse of canonicalization, for writing a repaired weight back."""
    if layout == "HWIM":
        c, _, h, k = w.shape
        return np.transpose(w[:, 0], (1, 2, 0)).reshape(h, k, c, 1)
    return np.transpose(w, np.argsort(TO_CANONICAL[layout]))


def _canon(w: np.ndarray, layout: str) -> np.ndarray:
    if layout == "HWIM":  # Keras depthwise (H, W, C, M) -> (C*M, 1, H, W)
        h, k, c, m = w.shape
        return np.transpose(w.reshape(h, k, c * m), (2, 0, 1))[:, None]
    return np.transpose(w, TO_CANONICAL[layout])


def _dequant(w: np.ndarray, q: dict | None) -> np.ndarray:
    if q is None or not np.issubdtype(w.dtype, np.integer):
        return w.astype(np.float64)
    scales = np.asarray(q["scales"], np.float64)
    zps = np.asarray(q["zero_points"], np.float64)
    shape = [1] * w.ndim
    if scales.size > 1:
        shape[q.get("axis", 0)] = -1
    return (w.astype(np.float64) - zps.reshape(shape)) * scales.reshape(shape)


def _items(layer) -> list:
    return list(layer.weights.items())


def _kernel_of(layer) -> Kernel | None:
    sem = layer.semantics.get("kernel")
    items, a = _items(layer), layer.attributes
    if sem is None or not items:
        return None
    q = (a.get("quantization") or {})
    kind, layout = sem["kind"], sem["layout"]
    attrs = {k: sem.get(k) for k in ("strides", "dilations", "pads", "padding", "groups",
                                     "fused_activation", "output_padding", "output_shape")
             if sem.get(k) is not None}
    wname, w = items[0]
    if w.ndim != len(TO_CANONICAL.get(layout, (0, 0, 0, 0))):
        return None
    bname, b = (items[1] if len(items) > 1 and items[1][1].ndim == 1 else (None, None))
    return Kernel(layer.name, kind, _canon(_dequant(w, q.get(wname)), layout),
                  None if b is None else _dequant(b, q.get(bname)).astype(np.float64),
                  wname, bname, layout, str(w.dtype), q.get(wname), attrs,
                  outputs=list(layer.outputs))


def _bn_params(layer) -> dict | None:
    sem = layer.semantics.get("batchnorm")
    w = [v for _, v in _items(layer)]
    if sem is None or len(w) < 4:
        return None
    g, b, m, v = (x.astype(np.float64) for x in w[:4])
    return {"gamma": g, "beta": b, "mean": m, "var": v, "eps": float(sem["eps"])}


def kernels(layers: list) -> list[Kernel]:
    """The model's weight-bearing layers, canonical, with a following BatchNorm attached."""
    out, by_name = [], {}
    for i, layer in enumerate(layers):
        k = _kernel_of(layer)
        if k is not None:
            k.index = i
            out.append(k)
            by_name[layer.name] = k
    for i, layer in enumerate(layers):
        bn = _bn_params(layer)
        if bn is None:
            continue
        prev = layer.inputs[0] if layer.inputs else (layers[i - 1].name if i else None)
        k = by_name.get(prev)
        if k is not None and k.weight.shape[0] == bn["gamma"].shape[0]:
            k.bn = dict(bn, layer=layer.name)
    return out
