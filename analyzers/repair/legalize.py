"""Legalization: a node the target runtime refuses rewritten into an exactly equivalent form that
the runtime accepts.

A converter may write a node the runtime cannot load or run although the computation is simple:
an op that is not in the format's standard, an attribute value outside what the kernel takes
(negative ConvTranspose pads, non-contiguous REVERSE_V2 axes, a 1-element FULLY_CONNECTED bias),
a rank beyond a kernel's or a delegate's limit. ``REWRITES`` maps (target format, op) to rewrites
that each read only the op's semantics (op type, attributes, constants, shapes), never a node's
name, and return the replacement nodes or None when the node does not have the fault they
remove. An ONNX rewrite may also replace a chain of nodes that starts at its node (a pattern whose
meaning only the whole chain has), and read what the converter dropped from the source model it
converted. ``legalize`` applies them to every node they apply to (the runtime names only the first
fault), and the caller verifies the new file by checking the pair again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Rewrite:
    """One exact rewrite of an op, with the words the repair's description uses for it."""

    description: str
    # ONNX: (ModelProto, NodeProto, OnnxContext) -> [NodeProto]; TFLite: (ModelT, SubGraphT,
    # OperatorT) -> [OperatorT]; None when the node lacks the fault the rewrite removes. It may
    # add constants to the model, and absorb nodes, only when it applies.
    apply: Callable[..., list | None]


# ---------------------------------------------------------------- ONNX


@dataclass
class OnnxContext:
    """What an ONNX rewrite may read beyond its node: the graph's original nodes (a tensor's
    producer and consumers), the source model the target was converted from (a converter may
    drop what an op means, such as a custom op's options), and the nodes a chain rewrite
    replaces together with the node it starts from (left out of the new graph)."""

    nodes: list
    source: object | None = None
    absorbed: set[int] = field(default_factory=set)  # id() of nodes in ``nodes``

    def consumers(self, name: str) -> list:
        return [n for n in self.nodes if name in n.input]

    def producer(self, name: str):
        return next((n for n in self.nodes if name in n.output), None)


def _const(m, name: str, v: float) -> str:
    from onnx import numpy_helper

    if not any(i.name == name for i in m.graph.initializer):
        m.graph.initializer.append(numpy_helper.from_array(np.array(v, np.float32), name))
    return name


def _erfc(m, n, _ctx: OnnxContext) -> list:
    from onnx import helper

    e = f"{n.name}_convlint_erf"
    return [helper.make_node("Erf", [n.input[0]], [e], name=f"{n.name}_erf"),
            helper.make_node("Sub", [_const(m, "convlint_one", 1.0), e], list(n.output),
                             name=n.name)]


def _gelu(m, n, _ctx: OnnxContext) -> list:
    """0.5 x (1 + erf(x / sqrt 2)), or the tanh form when the node says ``approximate``."""
    from onnx import helper

    x, t = n.input[0], f"{n.name}_convlint"
    approximate = any(a.name == "approximate" and a.i for a in n.attribute)
    if approximate:  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        inner = [helper.make_node("Mul", [x, x], [f"{t}_x2"]),
                 helper.make_node("Mul", [f"{t}_x2", x], [f"{t}_x3"]),
                 helper.make_node("Mul", [f"{t}_x3", _const(m, "convlint_gelu_c", 0.044715)],
                                  [f"{t}_cx3"]),
                 helper.make_node("Add", [x, f"{t}_cx3"], [f"{t}_s"]),
                 helper.make_node("Mul", [f"{t}_s",
                                          _const(m, "convlint_gelu_k", 0.7978845608028654)],
                                  [f"{t}_ks"]),
                 helper.make_node("Tanh", [f"{t}_ks"], [f"{t}_f"])]
    else:
        inner = [helper.make_node("Mul", [x, _const(m, "convlint_inv_sqrt2", 0.7071067811865476)],
                                  [f"{t}_s"]),
                 helper.make_node("Erf", [f"{t}_s"], [f"{t}_f"])]
    tail = [helper.make_node("Add", [f"{t}_f", _const(m, "convlint_one", 1.0)], [f"{t}_1p"]),
            helper.make_node("Mul", [x, f"{t}_1p"], [f"{t}_x1p"]),
            helper.make_node("Mul", [f"{t}_x1p", _const(m, "convlint_half", 0.5)],
                             list(n.output), name=n.name)]
    for k, node in enumerate(inner + tail[:-1]):
        node.name = f"{t}_{k}"
    return inner + tail


def _opset(m) -> int:
    return next((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), 1)


def _convtranspose_pads(m, n, _ctx: OnnxContext) -> list | None:
    """ConvTranspose with negative ``pads`` (tf2onnx writes them for Keras' ``output_padding``),
    which onnxruntime refuses. Its output is the full transposed convolution from index
    ``pad_begin`` to ``len - pad_end``; a negative pad takes positions beyond the full output,
    which receive no contribution, only the bias. So: pads clamped at 0, a negative end pad
    moved into ``output_padding`` while the spec allows it (``output_padding < stride``), the
    rest as a zero Pad of the output with the bias added after it."""
    from onnx import helper, numpy_helper

    attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
    pads = list(attrs.get("pads") or [])
    auto = attrs.get("auto_pad", b"NOTSET")
    if (not pads or min(pads) >= 0 or "output_shape" in attrs
            or (auto.decode() if isinstance(auto, bytes) else auto) != "NOTSET"):
        return None
    s = len(pads) // 2
    strides = list(attrs.get("strides") or [1] * s)
    extra = list(attrs.get("output_padding") or [0] * s)
    before, after = [0] * s, [0] * s
    for i in range(s):
        before[i] = max(-pads[i], 0)
        short = max(-pads[s + i], 0)
        if extra[i] + short < strides[i]:
            extra[i] += short
        else:
            after[i] = short
    node = helper.make_node("ConvTranspose", list(n.input), list(n.output), name=n.name)
    keep = [a for a in n.attribute if a.name not in ("pads", "output_padding", "auto_pad")]
    node.attribute.extend(keep)
    node.attribute.extend([helper.make_attribute("pads", [max(p, 0) for p in pads]),
                           helper.make_attribute("output_padding", extra)])
    if not any(before) and not any(after):
        return [node]
    t = f"{n.name}_convlint"
    del node.input[2:]  # the bias is added after the Pad, where the padded positions get it too
    node.output[0] = f"{t}_full"
    spec = [0, 0, *before, 0, 0, *after]
    if _opset(m) >= 11:
        m.graph.initializer.append(numpy_helper.from_array(np.array(spec, np.int64),
                                                           f"{t}_pads"))
        pad = helper.make_node("Pad", [f"{t}_full", f"{t}_pads"], [f"{t}_padded"],
                               name=f"{t}_pad", mode="constant")
    else:
        pad = helper.make_node("Pad", [f"{t}_full"], [f"{t}_padded"], name=f"{t}_pad",
                               mode="constant", pads=spec)
    if len(n.input) < 3 or not n.input[2]:
        pad.output[0] = n.output[0]
        return [node, pad]
    m.graph.initializer.append(numpy_helper.from_array(np.array([-1] + [1] * s, np.int64),
                                                       f"{t}_bias_shape"))
    return [node, pad,
            helper.make_node("Reshape", [n.input[2], f"{t}_bias_shape"], [f"{t}_bias"],
                             name=f"{t}_bias_reshape"),
            helper.make_node("Add", [f"{t}_padded", f"{t}_bias"], [n.output[0]],
                             name=f"{t}_bias_add")]


def _constant(m, ctx: OnnxContext, name: str) -> np.ndarray | None:
    """The value of tensor ``name`` when it is an initializer or a Constant node's output."""
    from onnx import helper, numpy_helper

    init = next((i for i in m.graph.initializer if i.name == name), None)
    if init is not None:
        return numpy_helper.to_array(init)
    node = ctx.producer(name)
    if node is None or node.op_type != "Constant":
        return None
    value = next((a for a in node.attribute if a.name == "value"), None)
    return None if value is None else numpy_helper.to_array(helper.get_attribute_value(value))


def _only_use(m, ctx: OnnxContext, name: str, op_type: str):
    """The one node that reads tensor ``name`` when it is of ``op_type`` and ``name`` is no
    graph output (a chain rewrite may then remove the tensor), else None."""
    users = ctx.consumers(name)
    if (len(users) != 1 or users[0].op_type != op_type
            or any(o.name == name for o in m.graph.output)):
        return None
    return users[0]


# Cast targets that keep the sign of an int32: FLOAT, INT32, INT64, FLOAT16, DOUBLE
_SIGN_KEEPING_CASTS = {1, 6, 7, 10, 11}
_INT32 = 6


def _masks_nan(m, ctx: OnnxContext, node, test: str, x: str) -> bool:
    """True when ``node`` is ``And(test, Equal(x, c))`` with a float32 constant ``c`` that
    holds no NaN: the And is false wherever ``x`` is NaN, whatever ``test`` says there."""
    if node.op_type != "And" or list(node.input).count(test) != 1:
        return False
    eq = ctx.producer(next(i for i in node.input if i != test))
    if eq is None or eq.op_type != "Equal" or list(eq.input).count(x) != 1:
        return False
    c = _constant(m, ctx, next(i for i in eq.input if i != x))
    return c is not None and c.dtype == np.float32 and not np.isnan(c).any()


def _bitcast_sign_test(m, n, ctx: OnnxContext) -> list | None:
    """Keras' ``signbit`` (``keras.ops.argmax`` on floats marks -0.0 with it) as tf2onnx writes
    it: ``Bitcast(x, int32) & INT32_MIN``, a Cast that keeps the sign, ``< 0``: the sign bit of
    float32 ``x``. onnxruntime has no Bitcast (BitwiseAnd needs opset 18). For every ``x`` but
    NaN the sign bit is set exactly when ``x < 0`` or ``1 / x < 0`` (``1 / -0 = -inf``); a NaN's
    sign bit shows through no standard op, so the chain is replaced only when every use of the
    test is And-ed with ``Equal(x, c)`` (the ``x == 0`` of Keras' negative-zero test), which is
    false for a NaN ``x`` whatever its sign."""
    from onnx import helper

    x, to = n.input[0], next((a.i for a in n.attribute if a.name == "type"), None)
    band = _only_use(m, ctx, n.output[0], "BitwiseAnd") if to == _INT32 else None
    if band is None or list(band.input).count(n.output[0]) != 1:
        return None
    mask = _constant(m, ctx, next(i for i in band.input if i != n.output[0]))
    if mask is None or mask.dtype != np.int32 or mask.size != 1 or mask.item() != -2**31:
        return None
    chain, tip = [band], band.output[0]
    cast = _only_use(m, ctx, tip, "Cast")
    if cast is not None:
        if next((a.i for a in cast.attribute if a.name == "to"), None) not in _SIGN_KEEPING_CASTS:
            return None
        chain, tip = [*chain, cast], cast.output[0]
    less = _only_use(m, ctx, tip, "Less")
    zero = _constant(m, ctx, less.input[1]) if less is not None and less.input[0] == tip else None
    if less is None or zero is None or zero.size != 1 or zero.item() != 0:
        return None
    test, uses = less.output[0], ctx.consumers(less.output[0])
    if (not uses or any(o.name == test for o in m.graph.output)
            or not all(_masks_nan(m, ctx, u, test, x) for u in uses)):
        return None
    ctx.absorbed.update(id(c) for c in (*chain, less))
    t, zero_name = f"{n.name}_convlint", _const(m, "convlint_zero", 0.0)
    return [helper.make_node("Less", [x, zero_name], [f"{t}_neg"], name=f"{t}_neg"),
            helper.make_node("Reciprocal", [x], [f"{t}_inv"], name=f"{t}_inv"),
            helper.make_node("Less", [f"{t}_inv", zero_name], [f"{t}_inv_neg"],
                             name=f"{t}_inv_neg"),
            helper.make_node("Or", [f"{t}_neg", f"{t}_inv_neg"], [test], name=n.name)]


MEDIAPIPE_TRANSPOSE_CONV = "Convolution2DTransposeBias"


def _ints(v) -> list[int]:
    """A flatbuffer object's vector (None, a list or a numpy array) as a list of ints."""
    return [] if v is None else [int(i) for i in v]


def _mediapipe_options(source, output: str) -> dict | None:
    """The options and shapes of the source TFLite's ``Convolution2DTransposeBias`` op that
    writes tensor ``output`` (tf2onnx keeps TFLite tensor names; else the source's only such
    op). MediaPipe stores the options as a raw ``TfLiteTransposeConvParams`` (int32 padding,
    stride_width, stride_height; padding 1 is SAME), not a flexbuffer, which tf2onnx drops."""
    from convlint.analyzers.repair import tflite_graph as g

    if source is None or getattr(source, "format", None) != "tflite":
        return None
    model = g.load(source.path)
    codes = [c.customCode for c in model.operatorCodes or []]
    found = [(sg, op) for sg in model.subgraphs or [] for op in sg.operators or []
             if codes[op.opcodeIndex] in (MEDIAPIPE_TRANSPOSE_CONV,
                                          MEDIAPIPE_TRANSPOSE_CONV.encode())]
    named = [(sg, op) for sg, op in found
             if g.tensor_name((sg.tensors or [])[_ints(op.outputs)[0]]) == output]
    hits = named or found
    if len(hits) != 1 or len(_ints(hits[0][1].customOptions)) < 12:
        return None
    sg, op = hits[0]
    raw, ins = bytes(_ints(op.customOptions)[:12]), _ints(op.inputs)
    padding, stride_w, stride_h = np.frombuffer(raw, "<i4")
    return {"same": int(padding) == 1, "strides": [int(stride_h), int(stride_w)],
            "input": g.shape(sg, int(ins[0])), "weights": g.shape(sg, int(ins[1]))}


def _transpose_conv_bias(m, n, ctx: OnnxContext) -> list | None:
    """MediaPipe's custom TFLite op ``Convolution2DTransposeBias``, which tf2onnx copies as an
    unknown ``TFL_Convolution2DTransposeBias`` node (NHWC input, OHWI weights, bias) without
    its options, read here from the source TFLite. Its kernel
    (mediapipe/util/tflite/operations/transpose_conv_bias.cc) starts the output at the bias and
    adds ``input[y, x, i] * weights[o, ky, kx, i]`` at output row ``y * stride - pad + ky``
    (columns alike), dropping positions outside the output; the padding total per dim is
    ``max(0, k - (in - 1) % stride - 1)`` for SAME, else 0, ``pad = total // 2``, and the
    output size ``stride * (in - 1) + k - total``. That is ONNX's ConvTranspose (weights in
    IOHW, no kernel flip) with pads ``total // 2`` and ``total - total // 2``, between
    NHWC -> NCHW -> NHWC Transposes."""
    from onnx import helper

    opts = _mediapipe_options(ctx.source, n.output[0]) if len(n.input) == 3 else None
    if opts is None or len(opts["input"]) != 4 or len(opts["weights"]) != 4:
        return None
    w = _constant(m, ctx, n.input[1])
    if w is not None and list(w.shape) != opts["weights"]:
        return None
    kernel = opts["weights"][1:3]
    total = [max(0, k - (size - 1) % s - 1) if opts["same"] else 0
             for k, size, s in zip(kernel, opts["input"][1:3], opts["strides"], strict=True)]
    t = f"{n.name}_convlint"
    return [helper.make_node("Transpose", [n.input[0]], [f"{t}_nchw"], name=f"{t}_in",
                             perm=[0, 3, 1, 2]),
            helper.make_node("Transpose", [n.input[1]], [f"{t}_iohw"], name=f"{t}_weights",
                             perm=[3, 0, 1, 2]),
            helper.make_node("ConvTranspose", [f"{t}_nchw", f"{t}_iohw", n.input[2]],
                             [f"{t}_out"], name=n.name, strides=opts["strides"],
                             kernel_shape=kernel,
                             pads=[p // 2 for p in total] + [p - p // 2 for p in total]),
            helper.make_node("Transpose", [f"{t}_out"], [n.output[0]], name=f"{t}_out",
                             perm=[0, 2, 3, 1])]


def _legalize_onnx(model, source=None) -> tuple | None:
    """``(bytes, descriptions)``: ``model`` with every node a rewrite applies to rewritten
    (``source``: the model it was converted from, for what the converter dropped)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    nodes, done = list(m.graph.node), []
    ctx = OnnxContext(nodes, source)
    del m.graph.node[:]
    for n in nodes:  # every such node, not only the one the runtime named first
        if id(n) in ctx.absorbed:  # replaced with the chain a rewrite started before it
            continue
        new = next(((r, out) for r in REWRITES.get(("onnx", n.op_type), ())
                    if (out := r.apply(m, n, ctx)) is not None), None)
        if new:
            done.append(f"{n.op_type}: {new[0].description}")
        m.graph.node.extend(new[1] if new else [n])
    return (m.SerializeToString(), done) if done else None


# ---------------------------------------------------------------- TFLite


def _s():
    from convlint.analyzers.repair import tflite_graph

    return tflite_graph.schema()


def _reverse_runs(model, sg, op) -> list | None:
    """REVERSE_V2 over non-contiguous axes (TFLite's kernel takes one contiguous run only): one
    REVERSE_V2 per contiguous run of axes, chained; reversals of different axes commute."""
    from convlint.analyzers.repair import tflite_graph as g

    axes = g.constant(model, sg, int(op.inputs[1]))
    x, y = int(op.inputs[0]), int(op.outputs[0])
    rank = len(g.shape(sg, x))
    if axes is None or rank == 0:
        return None
    ax = sorted({int(a) % rank for a in axes.reshape(-1)})
    runs: list[list[int]] = []
    for a in ax:
        if runs and a == runs[-1][-1] + 1:
            runs[-1].append(a)
        else:
            runs.append([a])
    if len(runs) < 2:
        return None
    name, ops, src = g.tensor_name(sg.tensors[y]), [], x
    for k, run in enumerate(runs):
        dst = y if k == len(runs) - 1 else g.add_like(model, sg, y, f"{name}/convlint_rev{k}")
        c = g.add_tensor(model, sg, f"{name}/convlint_axes{k}", [len(run)], axes.dtype,
                         np.asarray(run, axes.dtype))
        ops.append(g.make_op(model, _s().BuiltinOperator.REVERSE_V2, [src, c], [dst]))
        src = dst
    return ops


def _fc_bias(model, sg, op) -> list | None:
    """FULLY_CONNECTED whose bias has one element for N output channels (TF 2.19's converter
    fuses a broadcast Add into the bias unbroadcast; the kernel refuses it): the bias as a new
    constant of N equal elements. Float biases only: a quantized (int32) bias's scale follows
    the filter's channels."""
    from convlint.analyzers.repair import tflite_graph as g

    if len(op.inputs) < 3 or op.inputs[2] < 0:
        return None
    b, n = int(op.inputs[2]), g.shape(sg, int(op.inputs[1]))[0]
    bias = g.constant(model, sg, b)
    if bias is None or bias.size != 1 or n == 1 or bias.dtype not in (np.float32, np.float16):
        return None
    name = f"{g.tensor_name(sg.tensors[b])}/convlint_broadcast"
    full = g.add_tensor(model, sg, name, [n], bias.dtype, np.full([n], bias.reshape(-1)[0]))
    op.inputs = [*map(int, op.inputs[:2]), full, *map(int, op.inputs[3:])]
    return [op]


# XNNPACK's tensors have at most XNN_MAX_TENSOR_DIMS = 6 dimensions; the delegate still claims
# a FULLY_CONNECTED of a higher rank and then fails to prepare it
XNNPACK_MAX_RANK = 6


def _reshape(model, sg, src: int, dst: int, shape_: list):
    """A RESHAPE of tensor ``src`` into ``dst`` of static shape ``shape_``."""
    from convlint.analyzers.repair import tflite_graph as g

    s = _s()
    name = f"{g.tensor_name(sg.tensors[dst])}/convlint_shape"
    c = g.add_tensor(model, sg, name, [len(shape_)], np.int32, np.asarray(shape_, np.int32))
    opts = s.ReshapeOptionsT()
    opts.newShape = list(shape_)
    return g.make_op(model, s.BuiltinOperator.RESHAPE, [src, c], [dst],
                     s.BuiltinOptions.ReshapeOptions, opts)


def _fc_rank(model, sg, op) -> list | None:
    """FULLY_CONNECTED on an input of more dimensions than XNNPACK (TFLite's default delegate)
    handles: the input reshaped to 2-D ``[-1, K]``, the FC with ``keep_num_dims`` off, the
    result reshaped back to the leading dims and N. The same products in the same order."""
    import copy

    from convlint.analyzers.repair import tflite_graph as g

    x, y = int(op.inputs[0]), int(op.outputs[0])
    xs, ys = g.shape(sg, x), g.shape(sg, y)
    if len(xs) <= XNNPACK_MAX_RANK or not op.builtinOptions or min(xs + ys) < 1:
        return None
    k, name = xs[-1], g.tensor_name(sg.tensors[y])
    rows = int(np.prod(xs[:-1]))
    x2 = g.add_like(model, sg, x, f"{name}/convlint_in2d", [rows, k])
    y2 = g.add_like(model, sg, y, f"{name}/convlint_out2d", [rows, ys[-1]])
    fc = copy.deepcopy(op)
    fc.inputs = [x2, *map(int, op.inputs[1:])]
    fc.outputs = [y2, *map(int, op.outputs[1:])]
    fc.builtinOptions.keepNumDims = False
    return [_reshape(model, sg, x, x2, [rows, k]), fc, _reshape(model, sg, y2, y, ys)]


# TFLite's STRIDED_SLICE kernel (strided_slice.cc, Prepare) takes 1-D to 5-D inputs
STRIDED_SLICE_MAX_RANK = 5


def _slice_groups(dims: list, begin, end, strides, opts) -> list | None:
    """The input's dims grouped for a lower-rank slice: each run of adjacent dims the slice takes
    whole (begin 0, end the size, step 1, not shrunk) becomes one group, every other dim its own;
    None when the slice masks an ellipsis or new axes (its dims do not map one to one)."""
    if opts.ellipsisMask or opts.newAxisMask or opts.offset:
        return None
    groups: list[list[int]] = []
    for i, d in enumerate(dims):
        b = 0 if opts.beginMask >> i & 1 else int(begin[i]) + (d if begin[i] < 0 else 0)
        e = d if opts.endMask >> i & 1 else int(end[i]) + (d if end[i] < 0 else 0)
        whole = (int(strides[i]) == 1 and min(max(b, 0), d) == 0 and min(max(e, 0), d) == d
                 and not opts.shrinkAxisMask >> i & 1)
        if whole and groups and groups[-1][0] >= 0:
            groups[-1].append(i)
        else:
            groups.append([i] if whole else [-1, i])  # -1 marks a sliced dim
    return groups


def _strided_slice_rank(model, sg, op) -> list | None:
    """STRIDED_SLICE on an input of more dims than the kernel takes: adjacent dims the slice
    takes whole merged into one by a RESHAPE before it, the slice on the merged dims, a RESHAPE
    to the original output after it. A row-major reshape keeps the element order, so the slice
    selects the same elements in the same order."""
    import copy

    from convlint.analyzers.repair import tflite_graph as g

    x, y = int(op.inputs[0]), int(op.outputs[0])
    dims, ys = g.shape(sg, x), g.shape(sg, y)
    consts = [g.constant(model, sg, int(i)) for i in op.inputs[1:4]]
    if (len(dims) <= STRIDED_SLICE_MAX_RANK or not op.builtinOptions or min(dims + ys) < 1
            or any(c is None or c.size != len(dims) for c in consts)):
        return None
    begin, end, strides = (c.reshape(-1) for c in consts if c is not None)
    opts = op.builtinOptions
    groups = _slice_groups(dims, begin, end, strides, opts)
    if groups is None or len(groups) > STRIDED_SLICE_MAX_RANK:
        return None
    new = copy.deepcopy(opts)
    new.beginMask = new.endMask = new.shrinkAxisMask = 0
    xm, ym, rows = [], [], []  # merged input and output shapes; (begin, end, stride) per dim
    out = iter(ys)
    for k, grp in enumerate(groups):
        if grp[0] >= 0:  # taken whole: the product of its dims, in and out
            size = int(np.prod([dims[i] for i in grp]))
            for _ in grp:
                next(out)
            xm.append(size)
            ym.append(size)
            rows.append((0, size, 1))
            continue
        i = grp[1]
        xm.append(dims[i])
        rows.append((begin[i], end[i], strides[i]))
        new.beginMask |= (opts.beginMask >> i & 1) << k
        new.endMask |= (opts.endMask >> i & 1) << k
        new.shrinkAxisMask |= (opts.shrinkAxisMask >> i & 1) << k
        if not opts.shrinkAxisMask >> i & 1:
            ym.append(next(out))
    name = g.tensor_name(sg.tensors[y])
    x2 = g.add_like(model, sg, x, f"{name}/convlint_merged_in", xm)
    y2 = g.add_like(model, sg, y, f"{name}/convlint_merged_out", ym)
    idx = [g.add_tensor(model, sg, f"{name}/convlint_{what}", [len(v)], begin.dtype,
                        np.asarray(v, begin.dtype))
           for what, v in zip(("begin", "end", "strides"), zip(*rows, strict=True),
                              strict=True)]
    sl = copy.deepcopy(op)
    sl.inputs = [x2, *idx]
    sl.outputs = [y2]
    sl.builtinOptions = new
    return [_reshape(model, sg, x, x2, xm), sl, _reshape(model, sg, y2, y, ys)]


def _legalize_tflite(path: str) -> tuple | None:
    """``(bytes, descriptions)``: the TFLite model at ``path`` with every op a rewrite applies
    to rewritten, in every subgraph."""
    from convlint.analyzers.repair import tflite_graph as g

    model, done = g.load(path), []
    for sg in model.subgraphs or []:
        out = []
        for op in sg.operators or []:
            name = g.builtin_name(g.builtin_of(model, op))
            new = next(((r, res) for r in REWRITES.get(("tflite", name), ())
                        if (res := r.apply(model, sg, op)) is not None), None)
            if new:
                done.append(f"{name}: {new[0].description}")
            out.extend(new[1] if new else [op])
        sg.operators = out
    return (g.dump(model), done) if done else None


REWRITES: dict[tuple, tuple[Rewrite, ...]] = {
    ("onnx", "Erfc"): (Rewrite("1 - Erf(x) (standard ONNX ops)", _erfc),),
    ("onnx", "TFL_GELU"): (Rewrite("0.5 x (1 + erf(x / sqrt 2)), or its tanh form (standard "
                                   "ONNX ops)", _gelu),),
    ("onnx", "ConvTranspose"): (Rewrite("negative pads as output_padding, or a Pad after it",
                                        _convtranspose_pads),),
    ("onnx", "Bitcast"): (Rewrite("the sign-bit test Bitcast(x) & INT32_MIN < 0, masked by x == c, "
                                  "as x < 0 or 1/x < 0 (standard ONNX ops)", _bitcast_sign_test),),
    ("onnx", f"TFL_{MEDIAPIPE_TRANSPOSE_CONV}"): (
        Rewrite("ConvTranspose with the source's stride and padding, weights OHWI -> IOHW, "
                "between NHWC/NCHW Transposes (standard ONNX ops)", _transpose_conv_bias),),
    ("tflite", "REVERSE_V2"): (Rewrite("one REVERSE_V2 per contiguous run of axes",
                                       _reverse_runs),),
    ("tflite", "FULLY_CONNECTED"): (
        Rewrite("the 1-element bias broadcast to one per output channel", _fc_bias),
        Rewrite("the input reshaped to 2-D around the op, the result reshaped back", _fc_rank)),
    ("tflite", "STRIDED_SLICE"): (Rewrite("adjacent dims taken whole merged by a RESHAPE around "
                                          "the op", _strided_slice_rank),),
}


def applies(fmt: str, op: str) -> bool:
    """True when some rewrite is registered for ``op`` in format ``fmt``."""
    return (fmt, op) in REWRITES


def legalize(target, ops: set, source=None) -> tuple | None:
    """``(bytes, descriptions)`` of ``target`` with every node rewritten that a rewrite applies
    to, when one of the refused ``ops`` has rewrites; None when nothing was rewritten.
    ``source``, the model ``target`` was converted from, gives what a converter dropped."""
    if not any(applies(target.format, op) for op in ops):
        return None
    if target.format == "onnx":
        return _legalize_onnx(target.model, source)
    if target.format == "tflite":
        return _legalize_tflite(target.path)
    return None
