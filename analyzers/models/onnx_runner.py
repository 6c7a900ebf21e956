"""ONNX: run on onnxruntime (CPU), import into TVM with relax.frontend.onnx."""

from __future__ import annotations

import logging

import numpy as np

from convlint.analyzers.models.base import (
    LayerInfo,
    QuantParams,
    Runner,
    TensorSpec,
    layout_hint,
)

log = logging.getLogger(__name__)

# ops that before opset 13 coerce their input to 2-D at ``axis`` and normalize over every axis
# from there on: their layers carry the opset and the input's rank, which that meaning needs
COERCED_2D = ("Softmax", "LogSoftmax", "Hardmax")


def _sized(node) -> bool:
    """A ConvTranspose given ``output_shape``: its padding follows from its input's size, which
    its layer then carries (``input_shape``) for the describer."""
    return node.op_type == "ConvTranspose" and any(a.name == "output_shape" for a in node.attribute)


def _np_dtype(elem_type: int) -> str:
    import onnx

    try:
        return str(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)))
    except Exception:
        return "float32"


def _spec(vi) -> TensorSpec:
    t = vi.type.tensor_type
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in t.shape.dim)
    return TensorSpec(vi.name, dims, _np_dtype(t.elem_type), layout_hint(dims))


PRODUCERS = {"tf2onnx": "tf2onnx", "pytorch": "torch.onnx.export", "onnx2torch": "onnx2torch",
             "keras2onnx": "keras2onnx", "skl2onnx": "skl2onnx"}


class OnnxRunner(Runner):
    format = "onnx"
    backend = "onnxruntime"

    def _load_impl(self) -> None:
        import onnx

        self.model = onnx.load(self.path)
        if not self.model.graph.node or not self.model.graph.output:
            raise ValueError("no graph: the file parses but holds no nodes or outputs")
        self._session = None
        # onnxruntime's session creation is the native "load": a model it refuses (an op that
        # is not ONNX, a type error) is a crash of that step, not an unreadable file
        from convlint.analyzers.errors import StepFailed
        from convlint.analyzers.models.base import _failing_op, _short

        try:
            self._session = self.session()
        except Exception as e:
            raise StepFailed("load", self.backend, _short(e), op=_failing_op(e)) from e

    def session(self, model=None):
        import onnxruntime as ort

        ort.set_default_logger_severity(4)  # a kernel's error is reported as a finding, not logged
        opts = ort.SessionOptions()
        opts.log_severity_level = 4
        data = (model or self.model).SerializeToString()
        return ort.InferenceSession(data, opts, providers=["CPUExecutionProvider"])

    def _input_specs_impl(self):
        inits = {i.name for i in self.model.graph.initializer}
        return [_spec(v) for v in self.model.graph.input if v.name not in inits]

    def _output_specs_impl(self):
        return [_spec(v) for v in self.model.graph.output]

    def _run_impl(self, inputs):
        names = [o.name for o in self.model.graph.output]
        assert self._session is not None  # _load_impl made it (or raised)
        outs = self._session.run(names, inputs)
        return dict(zip(names, outs, strict=True))

    def _layers_impl(self):
        import onnx
        from onnx import numpy_helper

        inits = {i.name: i for i in self.model.graph.initializer}
        consts = {}
        for n in self.model.graph.node:
            if n.op_type == "Constant" and n.attribute:
                try:
                    consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
                except Exception:  # an odd Constant: its value is simply not read
                    log.debug("constant %s not read", n.output[0], exc_info=True)
        # Q/DQ weights: an integer initializer read through DequantizeLinear is the consumer's
        # weight, stored quantized (its scales and zero points go to attributes["quantization"])
        def const(node, k):
            ok = len(node.input) > k and node.input[k] in inits
            return numpy_helper.to_array(inits[node.input[k]]) if ok else None

        dq = {}
        for n in self.model.graph.node:
            if n.op_type == "DequantizeLinear" and n.input and n.input[0] in inits:
                axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
                zp, scale = const(n, 2), const(n, 1)
                if scale is None:  # a scale computed in the graph (a Constant node): not read here
                    continue
                scales = scale.reshape(-1)
                dq[n.output[0]] = (
                    n.input[0],
                    {
                        "scales": scales,
                        "axis": int(axis),
                        "zero_points": (zp if zp is not None else np.zeros(1)).reshape(-1),
                        "dtype": str(numpy_helper.to_array(inits[n.input[0]]).dtype),
                    },
                )
        opset = next((o.version for o in self.model.opset_import if o.domain in ("", "ai.onnx")), 0)
        shapes = self._shapes() if any((n.op_type in COERCED_2D and opset < 13) or _sized(n)
                                       for n in self.model.graph.node) else {}
        layers = []
        for i, n in enumerate(self.model.graph.node):
            weights, qparams = {}, {}
            for name in n.input:
                if name in inits:
                    weights[name] = numpy_helper.to_array(inits[name])
                elif name in consts:
                    weights[name] = consts[name]
                elif name in dq and n.op_type != "DequantizeLinear":
                    init_name, q = dq[name]
                    weights[init_name] = numpy_helper.to_array(inits[init_name])
                    qparams[init_name] = q
            attrs = {}
            for a in n.attribute:
                v = onnx.helper.get_attribute_value(a)
                attrs[a.name] = v.decode() if isinstance(v, bytes) else (
                    v if not hasattr(v, "ByteSize") else "<proto>")
            if qparams:
                attrs["quantization"] = qparams
            if n.op_type in COERCED_2D and opset < 13:  # what the describer needs to know
                rank = shapes.get(n.input[0])
                attrs.update(opset=opset, input_rank=None if rank is None else len(rank))
            if _sized(n):
                attrs["input_shape"] = shapes.get(n.input[0])
            layers.append(LayerInfo(n.name or f"{n.op_type}_{i}", n.op_type, weights, attrs,
                                    list(n.input), list(n.output)))
        return layers

    def _shapes(self) -> dict:
        """``{tensor: dims}`` from ONNX shape inference (a tensor it cannot type is left out; an
        unknown dim is None)."""
        import onnx

        try:
            g = onnx.shape_inference.infer_shapes(self.model).graph
        except Exception:  # noqa: BLE001 - a model inference refuses: shapes stay unknown
            log.debug("shape inference failed", exc_info=True)
            return {}
        out: dict[str, tuple] = {i.name: tuple(i.dims) for i in g.initializer}
        for v in [*g.input, *g.value_info, *g.output]:
            if v.type.tensor_type.HasField("shape"):
                out[v.name] = tuple(d.dim_value if d.HasField("dim_value") else None
                                    for d in v.type.tensor_type.shape.dim)
        return out

    def _intermediates_impl(self, inputs):
        import onnx

        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        existing = {o.name for o in m.graph.output}
        order = []
        for n in m.graph.node:
            for o in n.output:
                if o and o not in existing and n.op_type != "Constant":
                    m.graph.output.append(onnx.helper.make_empty_tensor_value_info(o))
                    existing.add(o)
                if o:
                    order.append(o)
        sess = self.session(m)
        names = [o.name for o in sess.get_outputs()]
        vals = dict(zip(names, sess.run(names, inputs), strict=True))
        return {k: np.asarray(vals[k]) for k in order if k in vals}

    def _activation_quantization_impl(self):
        """Per-tensor Q/DQ pairs on activations (``quantize_static``'s QDQ format): the float
        tensor quantized, and the Q and DQ outputs, share the pair's parameters."""
        from onnx import numpy_helper

        inits = {i.name: i for i in self.model.graph.initializer}
        out = {}
        for n in self.model.graph.node:
            if (n.op_type not in ("QuantizeLinear", "DequantizeLinear") or len(n.input) < 2
                    or n.input[0] in inits or n.input[1] not in inits):
                continue
            scale = numpy_helper.to_array(inits[n.input[1]]).reshape(-1)
            zp = (numpy_helper.to_array(inits[n.input[2]]) if len(n.input) > 2
                  and n.input[2] in inits else np.zeros(1, np.uint8))
            if scale.size != 1 or not np.issubdtype(zp.dtype, np.integer):
                continue
            info = np.iinfo(zp.dtype)
            p = QuantParams(float(scale[0]), int(zp.reshape(-1)[0]), int(info.min),
                            int(info.max))
            for t in (n.input[0], *n.output):
                out.setdefault(t, p)
        return out

    def _metadata_impl(self):
        m = self.model
        opset = {o.domain or "ai.onnx": o.version for o in m.opset_import}
        return {
            "producer_name": m.producer_name, "producer_version": m.producer_version,
            "ir_version": m.ir_version, "opset": opset,
            "metadata_props": {p.key: p.value for p in m.metadata_props},
            # the converter, as stage 1 names it (the producer the converter writes)
            "converter": PRODUCERS.get(m.producer_name.lower(), m.producer_name or None),
            "converter_version": next(iter(m.producer_version.split()), None),
            "conversion_evidence": {"opset": opset, "ir_version": m.ir_version},
        }

    # -- TVM -----------------------------------------------------------------------------------
    def static_model(self, input_shapes: dict):
        """A copy with every input dim fixed to ``input_shapes``."""
        import onnx

        m = onnx.ModelProto()
        m.CopyFrom(self.model)
        for vi in m.graph.input:
            if vi.name in input_shapes:
                shape = input_shapes[vi.name]
                dims = vi.type.tensor_type.shape.dim
                for d, v in zip(dims, shape, strict=False):
                    d.Clear()
                    d.dim_value = int(v)
        return m

    def _tvm_import_impl(self, input_shapes):
        def build():
            from tvm.relax.frontend.onnx import from_onnx

            m = self.static_model(input_shapes)
            try:
                # TVM annotates ``model`` as a GraphProto; it reads a ModelProto
                return "onnx -> relax.frontend.onnx", from_onnx(
                    m, shape_dict=dict(input_shapes))  # pyright: ignore[reportArgumentType]
            except Exception:
                # dynamic shape subgraphs: let onnxruntime fold them, then import again
                return ("onnx -> onnxruntime basic folding -> relax.frontend.onnx",
                        from_onnx(self._ort_folded(m),  # pyright: ignore[reportArgumentType]
                                  shape_dict=dict(input_shapes)))

        return build

    def _ort_folded(self, m):
        import os
        import tempfile

        import onnx
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "folded.onnx")
            opts = ort.SessionOptions()
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
            opts.optimized_model_filepath = out
            opts.log_severity_level = 4
            ort.InferenceSession(m.SerializeToString(), opts, providers=["CPUExecutionProvider"])
            return onnx.load(out)
