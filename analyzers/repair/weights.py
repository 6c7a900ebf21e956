"""patch-weights: copy aligned source weights into a copy of the target.

ONNX initializers and float TFLite flatbuffer buffers are supported. Weights are written in the
target's own layout and dtype (BatchNorm folded in where the target folded it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import numpy as np

from convlint.analyzers.report.io import write_new_file

if TYPE_CHECKING:
    from tflite.Buffer import Buffer
    from tflite.SubGraph import SubGraph
    from tflite.Tensor import Tensor


@dataclass
class Patch:
    tensor: str            # the target's tensor / initializer name
    value: np.ndarray      # in the target's native layout


def repaired_path(target: str, output: str | None = None) -> str:
    """``<stem>.repaired.<ext>`` beside the target, never an existing file, unless given."""
    if output:
        return output
    p = Path(target)
    stem, ext = (p.name.rsplit(".", 1) + [""])[:2] if p.is_file() else (p.name, "")
    for i in range(1, 1000):
        tag = "repaired" if i == 1 else f"repaired-{i}"
        cand = p.with_name(f"{stem}.{tag}.{ext}" if ext else f"{stem}.{tag}")
        if not cand.exists():
            return str(cand)
    raise RuntimeError("no free name for the repaired file")


def patch_onnx(target: str, patches: list, out: str, edits: Sequence = (),
               graph_edits: Sequence = ()) -> list:
    """Write ``out``: ``target`` with initializers replaced, attribute ``edits`` and
    ``graph_edits`` applied (see ``attributes`` and ``graph``). Returns the names patched."""
    import onnx
    from onnx import numpy_helper

    from convlint.analyzers.repair import graph
    from convlint.analyzers.repair.attributes import apply_onnx

    m = onnx.load(target)
    inits = {i.name: i for i in m.graph.initializer}
    done = []
    for p in patches:
        init = inits.get(p.tensor)
        if init is None:
            continue
        dt = numpy_helper.to_array(init).dtype
        if np.issubdtype(dt, np.integer):  # Q/DQ storage: bypass the DequantizeLinear
            if _bypass_dequantize(m, init, np.asarray(p.value, np.float32)):
                done.append(p.tensor)
            continue
        new = numpy_helper.from_array(
            np.asarray(p.value).astype(dt).reshape(tuple(init.dims)), init.name
        )
        init.CopyFrom(new)
        done.append(p.tensor)
    done += apply_onnx(m, list(edits))
    done += graph.apply_onnx(m, list(graph_edits))
    write_new_file(out, m.SerializeToString(), protect=(target,))
    return done


def _bypass_dequantize(m, init, value: np.ndarray) -> bool:
    """Feed the readers of ``DequantizeLinear(init)`` a new float initializer instead."""
    from onnx import numpy_helper

    dqs = [
        n
        for n in m.graph.node
        if n.op_type == "DequantizeLinear" and n.input and n.input[0] == init.name
    ]
    if not dqs:
        return False
    name = f"{init.name}_convlint_float"
    m.graph.initializer.append(numpy_helper.from_array(value.reshape(tuple(init.dims)), name))
    for dq in dqs:
        for n in m.graph.node:
            for i, x in enumerate(n.input):
                if x == dq.output[0]:
                    n.input[i] = name
        m.graph.node.remove(dq)
    return True


def patch_tflite(target: str, patches: list, out: str) -> list:
    """Write ``out``: ``target`` with float constant buffers overwritten in place (same size)."""
    import tflite

    buf = bytearray(Path(target).read_bytes())
    model = tflite.Model.GetRootAsModel(buf, 0)
    base = np.frombuffer(buf, np.uint8).ctypes.data
    names = {}
    for s in range(model.SubgraphsLength()):
        # the generated accessors return None only for an absent table or field
        sg = cast("SubGraph", model.Subgraphs(s))
        for i in range(sg.TensorsLength()):
            t = cast("Tensor", sg.Tensors(i))
            names[cast(bytes, t.Name()).decode()] = t
    done = []
    for p in patches:
        t = names.get(p.tensor)
        if t is None:
            continue
        b = cast("Buffer", model.Buffers(t.Buffer()))
        if b.DataLength() == 0:
            continue
        data = cast(np.ndarray, b.DataAsNumpy())  # an array: 0 only for an absent vector
        dtype = {0: np.float32, 1: np.float16}.get(t.Type())
        if dtype is None:
            continue  # quantized storage cannot take float weights in place
        value = np.ascontiguousarray(np.asarray(p.value).astype(dtype)).tobytes()
        if len(value) != data.nbytes:
            continue
        off = data.ctypes.data - base
        buf[off:off + len(value)] = value
        done.append(p.tensor)
    write_new_file(out, bytes(buf), protect=(target,))
    return done
