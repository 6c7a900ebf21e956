"""Editing a TFLite flatbuffer's graph: the object API of TensorFlow's own generated schema.

``load`` unpacks a ``.tflite`` into mutable objects (``ModelT``: subgraphs, tensors, operators,
buffers); the helpers add constant tensors, operators and operator codes; ``dump`` packs the model
again (with the TFLite file identifier). Used by the repairs that change a TFLite target's graph
(an op the kernel refuses rewritten into an equivalent form, an attribute the op cannot carry
replaced by a small subgraph). Needs TensorFlow, which runs TFLite targets here anyway.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# TFLite TensorType codes of the numpy dtypes a repair writes
_TYPES = {np.dtype(np.float32): 0, np.dtype(np.float16): 1, np.dtype(np.int32): 2,
          np.dtype(np.uint8): 3, np.dtype(np.int64): 4, np.dtype(np.bool_): 6,
          np.dtype(np.int8): 9}


def schema():
    from tensorflow.lite.python import schema_py_generated

    return schema_py_generated


def load(path: str):
    """The model at ``path`` as a mutable ``ModelT``."""
    s = schema()
    buf = Path(path).read_bytes()
    return s.ModelT.InitFromObj(s.Model.GetRootAs(buf, 0))


def dump(model) -> bytes:
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def opcode(model, builtin: int) -> int:
    """The index of the operator code for builtin op ``builtin`` (added when missing)."""
    for i, c in enumerate(model.operatorCodes):
        if max(c.builtinCode, c.deprecatedBuiltinCode) == builtin:
            return i
    c = schema().OperatorCodeT()
    c.builtinCode = builtin
    c.deprecatedBuiltinCode = min(builtin, 127)
    c.version = 1
    model.operatorCodes.append(c)
    return len(model.operatorCodes) - 1


def builtin_of(model, op) -> int:
    c = model.operatorCodes[op.opcodeIndex]
    return max(c.builtinCode, c.deprecatedBuiltinCode)


def tensor_name(t) -> str:
    n = t.name
    return n.decode() if isinstance(n, bytes) else str(n or "")


def add_tensor(model, sg, name: str, shape, dtype, data: np.ndarray | None = None) -> int:
    """A new tensor in subgraph ``sg`` (a constant when ``data`` is given); its index."""
    s = schema()
    t = s.TensorT()
    t.name = name
    t.shape = [int(d) for d in shape]
    t.type = _TYPES[np.dtype(dtype)]
    buf = s.BufferT()
    if data is not None:
        # a numpy array packs as one vector (the generated Pack takes it, typed List[int])
        raw = np.frombuffer(np.ascontiguousarray(np.asarray(data, dtype)).tobytes(), np.uint8)
        buf.data = raw  # pyright: ignore[reportAttributeAccessIssue]
    model.buffers.append(buf)
    t.buffer = len(model.buffers) - 1
    sg.tensors.append(t)
    return len(sg.tensors) - 1


def make_op(model, builtin: int, inputs, outputs, options_type: int = 0, options=None):
    s = schema()
    op = s.OperatorT()
    op.opcodeIndex = opcode(model, builtin)
    op.inputs = [int(i) for i in inputs]
    op.outputs = [int(o) for o in outputs]
    op.builtinOptionsType = options_type
    op.builtinOptions = options
    return op


def constant(model, sg, index: int) -> np.ndarray | None:
    """The value of tensor ``index`` when it is a constant (its buffer holds data), else None."""
    t = sg.tensors[index]
    data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
    if data is None or len(data) == 0:
        return None
    dtype = next(d for d, code in _TYPES.items() if code == t.type)
    shape = [] if t.shape is None else list(t.shape)
    return np.frombuffer(np.asarray(data, np.uint8).tobytes(), dtype).reshape(shape)


def builtin_name(code: int) -> str:
    """``"REVERSE_V2"`` for its code: the interpreter's messages and the rewrites use names."""
    return next((k for k, v in vars(schema().BuiltinOperator).items() if v == code), str(code))


def shape(sg, index: int) -> list:
    """Tensor ``index``'s static shape (``[]`` for a scalar)."""
    t = sg.tensors[index]
    return [] if t.shape is None else [int(d) for d in t.shape]


def add_like(model, sg, like: int, name: str, shape_=None) -> int:
    """A new intermediate tensor of tensor ``like``'s type and quantization (``shape_`` or its
    shape): a rewrite's inner tensors must carry the same scale as the tensor they stand for."""
    import copy

    t = copy.deepcopy(sg.tensors[like])
    t.name = name
    if shape_ is not None:
        t.shape = [int(d) for d in shape_]
        t.shapeSignature = None
    model.buffers.append(schema().BufferT())
    t.buffer = len(model.buffers) - 1
    sg.tensors.append(t)
    return len(sg.tensors) - 1
