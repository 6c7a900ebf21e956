"""Replay a few ops of a TFLite model alone, on given inputs, two ways (``onnx_replay``'s
interface, so the layer replay and its attribute search are format-blind).

* the reference: each TFLite op translated into the ONNX op(s) of the same meaning, in the
  TFLite op's own layout (NHWC), and run by ``onnx.reference.ReferenceEvaluator``: numpy written
  from the ONNX specification, sharing no code with the TFLite interpreter, TensorFlow or TVM;
* the runtime: the model cut down to those ops (a smaller ``.tflite``, the ops and constants
  untouched) on TFLite's interpreter with its default kernels, as a user runs it.

An op with no translation here has no reference (the replay says so and gives no verdict).
Quantized ops are not replayed: the reference would compare integer kernels with float meaning.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# TFLite fused activation -> (lo, hi)
_ACT = {1: (0.0, None), 2: (-1.0, 1.0), 3: (0.0, 6.0)}
_NCHW, _NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


class Sub:
    """A cut TFLite model: the packed bytes, and the object model it was made from."""

    def __init__(self, model, outputs: list):
        self.model, self.outputs = model, outputs

    def bytes(self) -> bytes:
        from convlint.analyzers.repair import tflite_graph as G

        return G.dump(self.model)


def _load(model):
    from convlint.analyzers.repair import tflite_graph as G

    s = G.schema()
    if isinstance(model, (bytes, bytearray)):
        return s.ModelT.InitFromObj(s.Model.GetRootAs(bytes(model), 0))
    return G.load(str(model))


def subgraph(model, nodes: list, feeds: dict, outputs: list) -> Sub:
    """A model of the ops whose first output is named in ``nodes``, reading the tensors named in
    ``feeds`` as its inputs and producing ``outputs``. ``model``: a path or the file's bytes."""
    from convlint.analyzers.repair import tflite_graph as G

    m: Any = _load(model)  # the generated object API types every list as optional
    sg = m.subgraphs[0]
    index = {G.tensor_name(t): i for i, t in enumerate(sg.tensors)}
    keep = set(nodes)
    sg.operators = [op for op in sg.operators if len(op.outputs) and op.outputs[0] >= 0
                    and G.tensor_name(sg.tensors[op.outputs[0]]) in keep]
    sg.inputs = [index[k] for k in feeds]
    for k, v in feeds.items():
        t = sg.tensors[index[k]]
        t.shape = [int(d) for d in np.shape(v)]
        t.shapeSignature = None
    sg.outputs = [index[o] for o in outputs]
    m.subgraphs = [sg]
    m.signatureDefs = []
    return Sub(m, list(outputs))


def run_runtime(sub: Sub, feeds: dict) -> list:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tensorflow import lite

        from convlint.analyzers.native import quiet

        with quiet():
            it = lite.Interpreter(model_content=sub.bytes())
            it.allocate_tensors()
    by_name = {d["name"]: d for d in it.get_input_details()}
    for k, v in feeds.items():
        d = by_name[k]
        it.set_tensor(d["index"], np.asarray(v, d["dtype"]))
    it.invoke()
    return [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]


def run_reference(sub: Sub, feeds: dict) -> list:
    from onnx.reference import ReferenceEvaluator

    with np.errstate(all="ignore"):  # numpy's overflow in exp is the op's meaning (inf), not news
        return [np.asarray(x) for x in ReferenceEvaluator(to_onnx(sub, feeds)).run(None, feeds)]


# --------------------------------------------------------------------------- the translation
def to_onnx(sub: Sub, feeds: dict):
    """The cut model as an ONNX graph of the same meaning (NHWC kept: convolutions and pools
    are transposed around). Raises NotImplementedError for an op with no translation."""
    from onnx import TensorProto, helper

    from convlint.analyzers.repair import tflite_graph as G

    m = sub.model
    sg = m.subgraphs[0]
    names = {v: k for k, v in vars(G.schema().BuiltinOperator).items() if not k.startswith("_")}
    b = _Builder(m, sg)
    for op in sg.operators:
        code = names.get(G.builtin_of(m, op), "CUSTOM")
        if any(sg.tensors[i].quantization is not None and sg.tensors[i].type in (3, 9, 7)
               for i in list(op.inputs) + list(op.outputs) if i >= 0):
            raise NotImplementedError(f"a quantized {code}: no float reference")
        fn = _OPS.get(code)
        if fn is None:
            raise NotImplementedError(f"no reference translation of TFLite {code}")
        fn(b, op, op.builtinOptions)
    ins = [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype),
                                         list(np.shape(v))) for k, v in feeds.items()]
    outs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in sub.outputs]
    g = helper.make_graph(b.nodes, "convlint_tflite_replay", ins, outs, b.inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 20)])


class _Builder:
    def __init__(self, model, sg):
        from convlint.analyzers.repair import tflite_graph as G

        self.m, self.sg, self.nodes, self.inits, self.k = model, sg, [], [], 0
        self.name = lambda i: G.tensor_name(sg.tensors[i])

    def const(self, i: int):
        """Tensor ``i``'s constant value, or None for a computed one."""
        t = self.sg.tensors[i]
        buf = self.m.buffers[t.buffer] if t.buffer else None
        if buf is None or buf.data is None or not len(buf.data):
            return None
        dt = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 6: np.bool_,
              9: np.int8, 7: np.int16}[t.type]
        shape = [int(d) for d in t.shape] if t.shape is not None else []
        return np.frombuffer(bytes(bytearray(buf.data)), dt).reshape(shape)

    def inp(self, i: int) -> str:
        """The ONNX name of input tensor ``i`` (a constant becomes an initializer once)."""
        from onnx import numpy_helper

        n = self.name(i)
        v = self.const(i)
        if v is not None and not any(x.name == n for x in self.inits):
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(v), n))
        return n

    def tmp(self, v=None) -> str:
        from onnx import numpy_helper

        self.k += 1
        n = f"_r{self.k}"
        if v is not None:
            self.inits.append(numpy_helper.from_array(np.asarray(v), n))
        return n

    def node(self, op: str, ins: list, out: str | None = None, **attrs) -> str:
        from onnx import helper

        out = out or self.tmp()
        self.nodes.append(helper.make_node(op, ins, [out], **attrs))
        return out

    def finish(self, y: str, op, opts) -> None:
        """``y`` through the op's fused activation into the op's output."""
        out = self.name(op.outputs[0])
        act = getattr(opts, "fusedActivationFunction", 0) if opts is not None else 0
        if act in _ACT:
            lo, hi = _ACT[act]
            self.node("Clip", [y, self.tmp(np.float32(lo))] + ([self.tmp(np.float32(hi))]
                                                               if hi is not None else []), out)
        elif act == 4:
            self.node("Tanh", [y], out)
        elif act:
            raise NotImplementedError(f"fused activation {act}")
        else:
            self.node("Identity", [y], out)


def _pad(opts) -> str:
    return "SAME_UPPER" if opts.padding == 0 else "VALID"


def _conv(b, op, o, depthwise=False):
    x, w = b.inp(op.inputs[0]), b.inp(op.inputs[1])  # the filter: OHWI, or 1HWC depthwise
    cin = b.sg.tensors[op.inputs[0]].shape[3]
    w = b.node("Transpose", [w], perm=[3, 0, 1, 2] if depthwise else [0, 3, 1, 2])
    ins = [b.node("Transpose", [x], perm=_NCHW), w]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        ins.append(b.inp(op.inputs[2]))
    y = b.node("Conv", ins, strides=[o.strideH, o.strideW], auto_pad=_pad(o),
               dilations=[o.dilationHFactor, o.dilationWFactor], group=int(cin) if depthwise else 1)
    b.finish(b.node("Transpose", [y], perm=_NHWC), op, o)


def _fc(b, op, o):
    x, w = b.inp(op.inputs[0]), b.inp(op.inputs[1])
    shape = b.sg.tensors[op.inputs[1]].shape
    if not o.keepNumDims:
        x = b.node("Reshape", [x, b.tmp(np.array([-1, int(shape[1])], np.int64))])
    y = b.node("MatMul", [x, b.node("Transpose", [w], perm=[1, 0])])
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        y = b.node("Add", [y, b.inp(op.inputs[2])])
    b.finish(y, op, o)


def _pool(kind):
    def fn(b, op, o):
        x = b.node("Transpose", [b.inp(op.inputs[0])], perm=_NCHW)
        kw = {"count_include_pad": 0} if kind == "AveragePool" else {}
        y = b.node(kind, [x], kernel_shape=[o.filterHeight, o.filterWidth],
                   strides=[o.strideH, o.strideW], auto_pad=_pad(o), **kw)
        b.finish(b.node("Transpose", [y], perm=_NHWC), op, o)
    return fn


def _binary(kind):
    def fn(b, op, o):
        b.finish(b.node(kind, [b.inp(i) for i in op.inputs[:2]]), op, o)
    return fn


def _unary(kind, **attrs):
    def fn(b, op, o):
        b.node(kind, [b.inp(op.inputs[0])], b.name(op.outputs[0]), **attrs)
    return fn


def _leaky(b, op, o):
    b.node("LeakyRelu", [b.inp(op.inputs[0])], b.name(op.outputs[0]), alpha=float(o.alpha))


def _gelu(b, op, o):
    b.node("Gelu", [b.inp(op.inputs[0])], b.name(op.outputs[0]),
           approximate="tanh" if o.approximate else "none")


def _clip(lo, hi):
    def fn(b, op, o):
        b.node("Clip", [b.inp(op.inputs[0]), b.tmp(np.float32(lo)), b.tmp(np.float32(hi))],
               b.name(op.outputs[0]))
    return fn


def _softmax(log):
    def fn(b, op, o):
        x = b.node("Mul", [b.inp(op.inputs[0]), b.tmp(np.float32(o.beta if o else 1.0))])
        b.node("LogSoftmax" if log else "Softmax", [x], b.name(op.outputs[0]), axis=-1)
    return fn


def _reduce(kind):
    def fn(b, op, o):
        axes = b.const(op.inputs[1])
        b.node(kind, [b.inp(op.inputs[0]), b.tmp(np.asarray(axes, np.int64).ravel())],
               b.name(op.outputs[0]), keepdims=int(bool(o.keepDims)))
    return fn


def _reshape(b, op, o):
    shape = b.const(op.inputs[1]) if len(op.inputs) > 1 and op.inputs[1] >= 0 else None
    if shape is None:
        shape = o.newShape if o is not None and o.newShape is not None else \
            b.sg.tensors[op.outputs[0]].shape
    b.node("Reshape", [b.inp(op.inputs[0]), b.tmp(np.asarray(shape, np.int64).ravel())],
           b.name(op.outputs[0]))


def _to_output_shape(b, op, o):  # SQUEEZE, EXPAND_DIMS: the output tensor's static shape
    b.node("Reshape", [b.inp(op.inputs[0]),
                       b.tmp(np.asarray(b.sg.tensors[op.outputs[0]].shape, np.int64))],
           b.name(op.outputs[0]))


def _pad_op(b, op, o):
    p = np.asarray(b.const(op.inputs[1]), np.int64)
    ins = [b.inp(op.inputs[0]), b.tmp(np.concatenate([p[:, 0], p[:, 1]]))]
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        ins.append(b.inp(op.inputs[2]))
    b.node("Pad", ins, b.name(op.outputs[0]))


def _concat(b, op, o):
    b.finish(b.node("Concat", [b.inp(i) for i in op.inputs], axis=int(o.axis)), op, o)


def _transpose(b, op, o):
    b.node("Transpose", [b.inp(op.inputs[0])], b.name(op.outputs[0]),
           perm=[int(v) for v in b.const(op.inputs[1])])


def _resize(nearest):
    def fn(b, op, o):
        size = [int(v) for v in b.const(op.inputs[1])]
        n, _, _, c = (int(d) for d in b.sg.tensors[op.inputs[0]].shape)
        # TFLite's nearest with half-pixel centers takes floor((x + 0.5) * scale): ONNX's
        # half_pixel rounded up at ties; bilinear's half-pixel is ONNX's own
        mode = ("align_corners" if o.alignCorners else
                "half_pixel" if o.halfPixelCenters else "asymmetric")
        kw = {"mode": "linear"}
        if nearest:
            kw = {"mode": "nearest", "nearest_mode": "round_prefer_ceil"
                  if o.alignCorners or o.halfPixelCenters else "floor"}
        b.node("Resize", [b.inp(op.inputs[0]), "", "",
                          b.tmp(np.array([n, size[0], size[1], c], np.int64))],
               b.name(op.outputs[0]), coordinate_transformation_mode=mode, **kw)
    return fn


def _depth_to_space(b, op, o):  # TF's order is ONNX's DCR
    x = b.node("Transpose", [b.inp(op.inputs[0])], perm=_NCHW)
    y = b.node("DepthToSpace", [x], blocksize=int(o.blockSize), mode="DCR")
    b.node("Transpose", [y], b.name(op.outputs[0]), perm=_NHWC)


def _floor_mod(b, op, o):
    x, y = b.inp(op.inputs[0]), b.inp(op.inputs[1])
    if b.sg.tensors[op.inputs[0]].type != 0:
        b.node("Mod", [x, y], b.name(op.outputs[0]), fmod=0)
        return
    q = b.node("Floor", [b.node("Div", [x, y])])
    b.node("Sub", [x, b.node("Mul", [q, y])], b.name(op.outputs[0]))


def _floor_div(b, op, o):
    x, y = b.inp(op.inputs[0]), b.inp(op.inputs[1])
    t = b.sg.tensors[op.outputs[0]].type
    if t == 0:
        b.node("Floor", [b.node("Div", [x, y])], b.name(op.outputs[0]))
        return
    from onnx import helper

    fx, fy = (b.node("Cast", [v], to=1) for v in (x, y))
    b.node("Cast", [b.node("Floor", [b.node("Div", [fx, fy])])], b.name(op.outputs[0]),
           to=helper.np_dtype_to_tensor_dtype(np.dtype({2: np.int32, 4: np.int64}[t])))


def _sqdiff(b, op, o):
    d = b.node("Sub", [b.inp(op.inputs[0]), b.inp(op.inputs[1])])
    b.node("Mul", [d, d], b.name(op.outputs[0]))


def _rsqrt(b, op, o):
    b.node("Reciprocal", [b.node("Sqrt", [b.inp(op.inputs[0])])], b.name(op.outputs[0]))


def _dequantize(b, op, o):
    b.node("Cast", [b.inp(op.inputs[0])], b.name(op.outputs[0]), to=1)


def _batch_matmul(b, op, o):
    a, c = b.inp(op.inputs[0]), b.inp(op.inputs[1])
    for flag, which in ((o.adjX, 0), (o.adjY, 1)):
        if flag:
            r = len(b.sg.tensors[op.inputs[which]].shape)
            t = b.node("Transpose", [(a, c)[which]], perm=list(range(r - 2)) + [r - 1, r - 2])
            a, c = (t, c) if which == 0 else (a, t)
    b.node("MatMul", [a, c], b.name(op.outputs[0]))


_OPS = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": lambda b, op, o: _conv(b, op, o, True),
    "FULLY_CONNECTED": _fc, "AVERAGE_POOL_2D": _pool("AveragePool"),
    "MAX_POOL_2D": _pool("MaxPool"), "ADD": _binary("Add"), "SUB": _binary("Sub"),
    "MUL": _binary("Mul"), "DIV": _binary("Div"), "MAXIMUM": _binary("Max"),
    "MINIMUM": _binary("Min"), "POW": _binary("Pow"), "RELU": _unary("Relu"),
    "RELU6": _clip(0.0, 6.0), "RELU_N1_TO_1": _clip(-1.0, 1.0), "RELU_0_TO_1": _clip(0.0, 1.0),
    "LOGISTIC": _unary("Sigmoid"), "TANH": _unary("Tanh"), "HARD_SWISH": _unary("HardSwish"),
    "EXP": _unary("Exp"), "LOG": _unary("Log"), "SQRT": _unary("Sqrt"), "RSQRT": _rsqrt,
    "NEG": _unary("Neg"), "ABS": _unary("Abs"), "FLOOR": _unary("Floor"),
    "CEIL": _unary("Ceil"), "ROUND": _unary("Round"), "SIN": _unary("Sin"),
    "COS": _unary("Cos"), "SQUARE": lambda b, op, o: b.node(
        "Mul", [b.inp(op.inputs[0])] * 2, b.name(op.outputs[0])),
    "LEAKY_RELU": _leaky, "GELU": _gelu, "PRELU": _binary("PRelu"),
    "SOFTMAX": _softmax(False), "LOG_SOFTMAX": _softmax(True), "MEAN": _reduce("ReduceMean"),
    "SUM": _reduce("ReduceSum"), "REDUCE_MAX": _reduce("ReduceMax"),
    "REDUCE_MIN": _reduce("ReduceMin"), "REDUCE_PROD": _reduce("ReduceProd"),
    "RESHAPE": _reshape, "SQUEEZE": _to_output_shape, "EXPAND_DIMS": _to_output_shape,
    "PAD": _pad_op, "PADV2": _pad_op, "CONCATENATION": _concat, "TRANSPOSE": _transpose,
    "RESIZE_BILINEAR": _resize(False), "RESIZE_NEAREST_NEIGHBOR": _resize(True),
    "FLOOR_MOD": _floor_mod, "FLOOR_DIV": _floor_div, "SQUARED_DIFFERENCE": _sqdiff,
    "DEQUANTIZE": _dequantize, "BATCH_MATMUL": _batch_matmul, "DEPTH_TO_SPACE": _depth_to_space,
}


# --------------------------------------------------------------------------- the option search
def _field(name: str) -> str:
    """The object API's name of an option the runner read (``Alpha`` -> ``alpha``)."""
    return name[:1].lower() + name[1:]


# options a converter may misread, by kind; geometry (strides, sizes) is the kernel stage's
ENUM_OPTIONS = {"FusedActivationFunction": [0, 1, 2, 3, 4], "Padding": [0, 1]}


def schema_for(node) -> dict:
    """``{option: (kind, default)}`` of a TFLite layer (its builtin options as the runner read
    them): floats, booleans (kind "int", tried 0 and 1) and enumerations (kind "string")."""
    out = {}
    for k, v in node.attributes.items():
        if k in ENUM_OPTIONS:
            out[k] = ("string", v)
        elif isinstance(v, bool):
            out[k] = ("int", int(v))
        elif isinstance(v, float):
            out[k] = ("float", v)
    return out


def with_attribute(sub: Sub, node: str, attribute: str, value) -> Sub:
    """A copy of ``sub`` with ``node``'s option (or ``input:K``, a scalar constant) set."""
    import copy

    m = copy.deepcopy(sub.model)
    set_attribute(m, node, attribute, value)
    return Sub(m, sub.outputs)


def set_attribute(model, node: str, attribute: str, value) -> bool:
    """Set an option of the op whose first output is ``node``, in a ``ModelT``, in place."""
    from convlint.analyzers.repair import tflite_graph as G

    for sg in model.subgraphs:
        for op in sg.operators:
            if not len(op.outputs) or G.tensor_name(sg.tensors[op.outputs[0]]) != node:
                continue
            if attribute.startswith("input:"):
                t = sg.tensors[op.inputs[int(attribute.split(":")[1])]]
                old = model.buffers[t.buffer]
                dt = {0: np.float32, 1: np.float16, 2: np.int32, 4: np.int64}[t.type]
                n = max(int(np.prod(t.shape)) if t.shape is not None else 1, 1)
                buf: Any = G.schema().BufferT()
                buf.data = np.frombuffer(np.full(n, value, dt).tobytes(), np.uint8)
                model.buffers.append(buf)
                t.buffer = len(model.buffers) - 1
                del old
                return True
            o = op.builtinOptions
            f = _field(attribute)
            if o is None or not hasattr(o, f):
                return False
            cur = getattr(o, f)
            setattr(o, f, bool(value) if isinstance(cur, bool) else type(cur)(value))
            return True
    return False


def schema_attributes(op_type: str, domain: str = "") -> dict:  # noqa: ARG001 - the interface
    """No schema by name: a TFLite op's options are read off the layer (``schema_for``)."""
    return {}


def apply_edit(sub: Sub, edit) -> Sub | None:
    """A copy of ``sub`` with a graph ``edit`` made (``remove`` only: each op's readers read
    its first input instead); None when it cannot be made here."""
    import copy

    from convlint.analyzers.repair import tflite_graph as G

    if edit.action != "remove":
        return None
    m = copy.deepcopy(sub.model)
    sg = m.subgraphs[0]
    gone = set(edit.nodes)
    alias = {}
    kept = []
    for op in sg.operators:
        if len(op.outputs) and G.tensor_name(sg.tensors[op.outputs[0]]) in gone:
            alias[op.outputs[0]] = alias.get(op.inputs[0], op.inputs[0])
        else:
            op.inputs = [alias.get(i, i) for i in op.inputs]
            kept.append(op)
    if not alias:
        return None
    sg.operators = kept
    outs = [alias.get(i, i) for i in sg.outputs]
    if not kept:  # nothing left to run: the output is an input, as it was fed
        return Sub(m, [G.tensor_name(sg.tensors[i]) for i in outs])
    sg.outputs = outs
    return Sub(m, [G.tensor_name(sg.tensors[i]) for i in outs])
