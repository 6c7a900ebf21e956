"""Replay a few nodes of an ONNX model alone, on given inputs, two ways.

* ``onnx.reference.ReferenceEvaluator``: every ONNX op written in numpy from the specification;
  it shares no code with onnxruntime, TVM or the framework the model came from, so it says what
  the converted op *means*;
* onnxruntime: what the target's runtime computes.

Comparing both with the source layer's captured output on the same captured inputs tells a
converter fault (the op means something else) from a runtime fault (the kernel deviates from the
op's meaning). Used by the pipeline at the first divergent layer, and by the repair search to try
a candidate attribute in milliseconds before a whole-model check.
"""

from __future__ import annotations

import numpy as np


def subgraph(model, nodes: list, feeds: dict, outputs: list):
    """A model of ``nodes`` (names, in the model's order) reading ``feeds`` (tensor -> array)
    and the initializers they use, producing ``outputs``. ``model`` is not modified."""
    from onnx import helper

    keep = set(nodes)
    chosen = [n for n in model.graph.node if n.name in keep]
    used = {i for n in chosen for i in n.input if i}
    # the Constant nodes the chosen ones read come along (they are weights, not inputs)
    consts = [n for n in model.graph.node if n.op_type == "Constant" and n.name not in keep
              and any(o in used and o not in feeds for o in n.output)]
    chosen = consts + chosen
    inits = [i for i in model.graph.initializer if i.name in used and i.name not in feeds]
    inputs = [helper.make_tensor_value_info(
        k, helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype), list(np.shape(v)))
        for k, v in feeds.items()]
    outs = [helper.make_empty_tensor_value_info(o) for o in outputs]
    g = helper.make_graph(chosen, "convlint_replay", inputs, outs, inits)
    m = helper.make_model(g, opset_imports=list(model.opset_import),
                          ir_version=model.ir_version)
    for f in model.functions:
        m.functions.append(f)
    return m


def run_reference(sub, feeds: dict) -> list:
    from onnx.reference import ReferenceEvaluator

    return [np.asarray(x) for x in ReferenceEvaluator(sub).run(None, feeds)]


def run_runtime(sub, feeds: dict) -> list:
    import onnxruntime as ort

    ort.set_default_logger_severity(4)  # a candidate the kernel refuses is expected, not news
    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    sess = ort.InferenceSession(sub.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return [np.asarray(x) for x in sess.run(None, feeds)]


def with_attribute(sub, node: str, attribute: str, value):
    """A copy of ``sub`` with ``node``'s ``attribute`` set to ``value`` (``input:K`` sets the
    K-th input, a scalar constant, to a new initializer; None leaves the attribute out)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(sub)
    set_attribute(m, node, attribute, value)
    return m


def set_attribute(model, node: str, attribute: str, value) -> bool:
    """Set ``attribute`` of ``node`` in ``model`` in place; True when the node exists."""
    from onnx import helper, numpy_helper

    n = next((x for x in model.graph.node if x.name == node), None)
    if n is None:
        return False
    if attribute.startswith("input:"):
        k = int(attribute.split(":")[1])
        name = f"{n.name}_convlint_in{k}"
        old = next(
            (
                i
                for i in model.graph.initializer
                if i.name == (n.input[k] if k < len(n.input) else "")
            ),
            None,
        )
        dt = numpy_helper.to_array(old).dtype if old is not None else np.float32
        shape = tuple(old.dims) if old is not None else ()
        for i in list(model.graph.initializer):
            if i.name == name:
                model.graph.initializer.remove(i)
        model.graph.initializer.append(
            numpy_helper.from_array(np.full(shape, value).astype(dt), name))
        while len(n.input) <= k:
            n.input.append("")
        n.input[k] = name
        return True
    for a in list(n.attribute):
        if a.name == attribute:
            n.attribute.remove(a)
    if value is None:  # the attribute left out: the op's default meaning
        return True
    if isinstance(value, float) and float(value).is_integer() and _int_attribute(n, attribute):
        value = int(value)
    n.attribute.append(helper.make_attribute(attribute, value))
    return True


def _int_attribute(node, attribute: str) -> bool:
    import onnx

    try:
        schema = onnx.defs.get_schema(node.op_type, domain=node.domain or "")
    except Exception:  # noqa: BLE001 - an op without a schema: keep the value's own type
        return False
    a = schema.attributes.get(attribute)
    return a is not None and a.type == onnx.defs.OpSchema.AttrType.INT


def schema_attributes(op_type: str, domain: str = "", opset: int | None = None) -> dict:
    """``{name: (kind, default)}`` for the op's attributes (in the model's ``opset`` when given:
    an attribute may become an input in a later one): kind is "float", "int", "string" or
    "other"; default is the schema's default value or None."""
    import onnx
    from onnx import helper

    try:
        schema = (onnx.defs.get_schema(op_type, opset, domain=domain) if opset
                  else onnx.defs.get_schema(op_type, domain=domain))
    except Exception:  # noqa: BLE001 - a custom op: nothing known
        return {}
    T = onnx.defs.OpSchema.AttrType
    kinds = {T.FLOAT: "float", T.INT: "int", T.STRING: "string"}
    out = {}
    for name, a in schema.attributes.items():
        default = None
        if a.default_value is not None and a.default_value.type:
            default = helper.get_attribute_value(a.default_value)
            if isinstance(default, bytes):
                default = default.decode()
        out[name] = (kinds.get(a.type, "other"), default)
    return out


def schema_for(node) -> dict:
    """``schema_attributes`` of a layer's op (the replayers' shared interface)."""
    return schema_attributes(node.op_type, "")
