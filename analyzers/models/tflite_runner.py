"""TFLite: run on the TF Lite interpreter, import into TVM with relax.frontend.tflite.

Quantized inputs accept float arrays (quantized with the input's scale and zero point) and
quantized outputs are returned dequantized, so a float source can be compared directly.
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

from convlint.analyzers.models.base import (
    LayerInfo,
    QuantParams,
    Runner,
    TensorSpec,
    layout_hint,
)

FLATBUFFER_IDS = (b"TFL3",)


def verify_flatbuffer(buf: bytes) -> str | None:
    """Why a TFLite model cannot be handed to the interpreter safely, or None.

    The C++ interpreter trusts the flatbuffer's offsets and indices, so a damaged file can crash
    the process (found by the loader fuzzer). The whole model is unpacked in Python first (an
    out-of-range offset raises there), then every index is checked: tensor -> buffer, operator ->
    operator code, operator and subgraph inputs/outputs -> tensors, shapes non-negative."""
    from tensorflow.lite.python import schema_py_generated as S  # noqa: N812

    try:
        m = S.ModelT.InitFromPackedBuf(bytearray(buf), 0)
    except Exception as e:  # noqa: BLE001 - any failure to unpack means a damaged file
        return f"the flatbuffer does not unpack ({type(e).__name__})"
    if not m.subgraphs:
        return "no subgraph"
    ncodes, nbufs = len(m.operatorCodes or []), len(m.buffers or [])
    for si, sg in enumerate(m.subgraphs):
        tensors = sg.tensors if sg.tensors is not None else []
        nt = len(tensors)
        for ti, t in enumerate(tensors):
            if t.buffer and not 0 <= t.buffer < nbufs:
                return f"subgraph {si} tensor {ti} names buffer {t.buffer} of {nbufs}"
            shape = list(t.shape) if t.shape is not None else []
            if any(int(d) < -1 for d in shape):
                return f"subgraph {si} tensor {ti} has a negative dimension {shape}"
            n = 1
            for d in shape:
                n *= max(int(d), 1)
            if n > 2**31:
                return f"subgraph {si} tensor {ti} has {n} elements"
        for oi, op in enumerate(sg.operators if sg.operators is not None else []):
            if not 0 <= op.opcodeIndex < ncodes:
                return (
                    f"subgraph {si} operator {oi} names operator code {op.opcodeIndex} of {ncodes}"
                )
            for i in [
                *(op.inputs if op.inputs is not None else []),
                *(op.outputs if op.outputs is not None else []),
            ]:
                if not -1 <= int(i) < nt:
                    return f"subgraph {si} operator {oi} names tensor {int(i)} of {nt}"
        for i in [
            *(sg.inputs if sg.inputs is not None else []),
            *(sg.outputs if sg.outputs is not None else []),
        ]:
            if not 0 <= int(i) < nt:
                return f"subgraph {si} input/output names tensor {int(i)} of {nt}"
    return None


class TFLiteRunner(Runner):
    format = "tflite"
    backend = "tflite"

    def _load_impl(self) -> None:
        with open(self.path, "rb") as fh:
            self.buf = fh.read()
        if len(self.buf) < 8 or self.buf[4:8] not in FLATBUFFER_IDS:
            raise ValueError("not a TFLite flatbuffer (no TFL3 identifier)")
        reason = verify_flatbuffer(self.buf)
        if reason:  # the TFLite interpreter trusts the file's indices: a bad one is a segfault
            raise ValueError(f"a corrupt TFLite flatbuffer: {reason}")
        self._interp_all = None
        # the default kernels (the XNNPACK delegate takes what it can) are what a user runs; where
        # they fail and TFLite's builtin kernels do not, that is the runtime's fault, recorded
        self.builtin_only = False
        try:
            self.interp = self._interpreter(preserve=False)
            return
        except Exception as e:  # noqa: BLE001 - the interpreter refused the model
            default_error = e
        try:
            self.builtin_only = True
            self.interp = self._interpreter(preserve=False)
        except Exception:  # noqa: BLE001 - the builtin kernels refuse it too: a crash
            self.builtin_only = False
            raise _step("load", default_error) from default_error
        self.runtime_faults.append(
            {
                "step": "load",
                "backend": "tflite (default delegates)",
                "message": _short_error(default_error),
                "op": _tflite_op(default_error),
                "fallback": "tflite builtin kernels without delegates",
            }
        )

    def _interpreter(self, preserve: bool):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from tensorflow import lite

            kw = {}
            if self.builtin_only:
                kw["experimental_op_resolver_type"] = \
                    lite.experimental.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
            from convlint.analyzers.native import quiet

            with quiet():  # the interpreter announces its XNNPACK delegate on fd 2
                it = lite.Interpreter(model_content=self.buf,
                                      experimental_preserve_all_tensors=preserve, **kw)
                it.allocate_tensors()
        return it

    def static_layers(self) -> list:
        """``[(op name, [output tensor names], [constant float inputs])]`` read from the
        flatbuffer alone, for a model the interpreter cannot prepare."""
        from tensorflow.lite.python import schema_py_generated as S  # noqa: N812

        m = S.ModelT.InitFromPackedBuf(bytearray(self.buf), 0)
        names = {v: k for k, v in vars(S.BuiltinOperator).items() if not k.startswith("_")}
        # load's verify_flatbuffer refused a model without a subgraph or with an index out of
        # range, so every list indexed below is present
        assert m.subgraphs
        sg = m.subgraphs[0]
        codes = m.operatorCodes if m.operatorCodes is not None else []
        buffers = m.buffers if m.buffers is not None else []
        tensors = sg.tensors if sg.tensors is not None else []
        out = []
        for op in sg.operators or []:
            code = codes[op.opcodeIndex]
            b = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
            name = names.get(b, "CUSTOM")
            out_idx = op.outputs if op.outputs is not None else []
            # the generated code says ``name`` is a str; unpacked, it holds bytes
            outs = [n.decode(errors="replace") if isinstance(n, bytes) else str(n)
                    for n in (tensors[i].name for i in out_idx if i >= 0)]
            consts = []
            for i in (op.inputs if op.inputs is not None else []):
                t = tensors[i] if i >= 0 else None
                data = buffers[t.buffer].data if t is not None and t.buffer else None
                # (data is None whenever t is)
                if (t is not None and data is not None and len(data)
                        and t.type == S.TensorType.FLOAT32):
                    arr = np.frombuffer(bytes(bytearray(data)), np.float32)
                    # a tensor without a shape raises here, as it always has
                    consts.append(arr.reshape(
                        [int(d) for d in t.shape]))  # pyright: ignore[reportOptionalIterable]
            out.append((name, outs, consts))
        return out

    @staticmethod
    def _spec(d) -> TensorSpec:
        sig = d.get("shape_signature", d["shape"])
        dims = tuple(None if int(s) < 0 else int(s) for s in sig)
        return TensorSpec(d["name"], dims, str(np.dtype(d["dtype"])), layout_hint(dims))

    def _input_specs_impl(self):
        return [self._spec(d) for d in self.interp.get_input_details()]

    def _output_specs_impl(self):
        return [self._spec(d) for d in self.interp.get_output_details()]

    def _invoke(self, it, inputs: dict) -> None:
        details = it.get_input_details()
        for i, d in enumerate(details):
            x = inputs[d["name"]] if d["name"] in inputs else list(inputs.values())[i]
            x = np.asarray(x)
            if tuple(x.shape) != tuple(d["shape"]):
                it.resize_tensor_input(d["index"], list(x.shape))
                it.allocate_tensors()
            it.set_tensor(d["index"], _quantize(x, d))
        it.invoke()

    def _run_impl(self, inputs):
        try:
            self._invoke(self.interp, inputs)
        except Exception as e:  # the kernels refuse it at run time: a crash naming the op
            raise _step("run", e) from e
        return {d["name"]: _dequantize(self.interp.get_tensor(d["index"]), d)
                for d in self.interp.get_output_details()}

    def _tensor_names(self, it) -> dict:
        return {t["index"]: t for t in it.get_tensor_details()}

    def _layers_impl(self):
        it = self.interp
        tensors = self._tensor_names(it)
        produced = {o for op in it._get_ops_details() for o in op["outputs"]}
        graph_inputs = {d["index"] for d in it.get_input_details()}
        opts = _builtin_options(self.buf)
        ops = [op for op in it._get_ops_details() if op["op_name"] != "DELEGATE"]
        # weights stored as float16 reach their op through a DEQUANTIZE of a constant
        dequant = {op["outputs"][0]: op["inputs"][0] for op in ops
                   if op["op_name"] == "DEQUANTIZE" and op["inputs"][0] not in produced}
        layers = []
        for op in ops:
            weights, qparams = {}, {}
            for t in op["inputs"]:
                t = dequant.get(t, t)
                if t < 0 or t in produced or t in graph_inputs:
                    continue
                info = tensors[t]
                try:
                    weights[info["name"]] = np.array(it.get_tensor(t))
                except ValueError:
                    continue
                q = info.get("quantization_parameters") or {}
                if len(q.get("scales", [])):
                    qparams[info["name"]] = {"scales": q["scales"], "zero_points": q["zero_points"],
                                             "axis": int(q.get("quantized_dimension", 0)),
                                             "dtype": str(np.dtype(info["dtype"]))}
            attrs = dict(opts.get(op["index"], {}))
            if qparams:
                attrs["quantization"] = qparams
            out_names = [tensors[o]["name"] for o in op["outputs"] if o >= 0]
            layers.append(
                LayerInfo(
                    out_names[0] if out_names else f"{op['op_name']}_{op['index']}",
                    op["op_name"],
                    weights,
                    attrs,
                    [tensors[t]["name"] for t in op["inputs"] if t >= 0],
                    out_names,
                )
            )
        return layers

    def _activation_quantization_impl(self):
        it = self.interp
        tensors = self._tensor_names(it)
        out = {}
        for d in it.get_input_details():
            if (p := _qparams(tensors[d["index"]])) is not None:
                out[d["name"]] = p
        for op in it._get_ops_details():
            if op["op_name"] == "DELEGATE":
                continue
            for o in op["outputs"]:
                if o >= 0 and (p := _qparams(tensors[o])) is not None:
                    out[tensors[o]["name"]] = p
                    if op["op_name"] == "QUANTIZE" and op["inputs"][0] >= 0:
                        # a float input quantized on entry: its range is what calibration saw
                        out.setdefault(tensors[op["inputs"][0]]["name"], p)
            if op["op_name"] == "DEQUANTIZE" and op["inputs"][0] >= 0 and op["outputs"][0] >= 0:
                # a float output dequantized on exit holds the integer tensor's values
                if (p := _qparams(tensors[op["inputs"][0]])) is not None:
                    out.setdefault(tensors[op["outputs"][0]]["name"], p)
        return out

    def _intermediates_impl(self, inputs):
        if self._interp_all is None:
            self._interp_all = self._interpreter(preserve=True)
        it = self._interp_all
        self._invoke(it, inputs)
        tensors = self._tensor_names(it)
        out = {}
        for op in it._get_ops_details():
            if op["op_name"] == "DELEGATE":
                continue
            for o in op["outputs"]:
                if o >= 0:
                    out[tensors[o]["name"]] = _dequantize(np.array(it.get_tensor(o)), tensors[o])
        return out

    def _metadata_impl(self):
        import tflite

        m = tflite.Model.GetRootAsModel(self.buf, 0)
        meta = {}
        for i in range(m.MetadataLength()):
            md = m.Metadata(i)
            assert md is not None  # i < MetadataLength(), so the vector is there
            # an entry without a name, or a model without buffers, raises here, as it always has
            name = md.Name().decode(errors="replace")  # pyright: ignore[reportOptionalMemberAccess]
            b = m.Buffers(md.Buffer())
            size = b.DataLength()  # pyright: ignore[reportOptionalMemberAccess]
            raw = b.DataAsNumpy() if size else b""  # pyright: ignore[reportOptionalMemberAccess]
            raw = bytes(raw) if not isinstance(raw, int) else b""
            meta[name] = (
                raw.decode(errors="replace").rstrip("\x00")
                if name == "min_runtime_version"
                else len(raw)
            )
        dtypes = {}
        for t in self.interp.get_tensor_details():
            dtypes[str(np.dtype(t["dtype"]))] = dtypes.get(str(np.dtype(t["dtype"])), 0) + 1
        description = (m.Description() or b"").decode(errors="replace")
        return {"producer_name": "tflite", "version": m.Version(), "description": description,
                "metadata": meta, "tensor_dtypes": dtypes,
                # the converter, as stage 1 names it: the MLIR-based TFLiteConverter says so
                "converter": "TFLiteConverter" if "mlir" in description.lower() else "tflite",
                "converter_version": meta.get("min_runtime_version"),
                "conversion_evidence": {
                    "tensor_dtypes": dtypes,
                    "quantized_storage": any(d in dtypes for d in ("int8", "uint8", "int16")),
                    "float16_storage": "float16" in dtypes}}

    def _shapes_at(self, input_shapes: dict) -> dict:
        """Every tensor's shape (index -> list) in one run of the interpreter on zeros at these
        input shapes."""
        it = self._interpreter(preserve=True)
        self._invoke(
            it,
            {
                s.name: np.zeros(input_shapes.get(s.name, [d or 1 for d in s.shape]), s.dtype)
                for s in self.input_specs()
            },
        )
        shapes = {}
        for t in it.get_tensor_details():
            try:
                shapes[t["index"]] = list(it.get_tensor(t["index"]).shape)
            except ValueError:  # a tensor without data (an unused or optional one)
                continue
        return shapes

    def _tvm_import_impl(self, input_shapes):
        def build():
            import tflite
            from tvm.relax.frontend.tflite import from_tflite

            dtypes = {s.name: s.dtype for s in self.input_specs()}
            with _computed_reshape_targets(lambda: self._shapes_at(input_shapes)):
                return "tflite -> relax.frontend.tflite", from_tflite(
                    tflite.Model.GetRootAsModel(self.buf, 0),
                    shape_dict={k: tuple(v) for k, v in input_shapes.items()}, dtype_dict=dtypes)

        return build


@contextlib.contextmanager
def _computed_reshape_targets(concrete_shapes):
    """relax.frontend.tflite (TVM 0.27) refuses a RESHAPE whose new shape is computed in the graph
    ("Expected Array<ir.Expr> but got ir.Call"). TFLiteConverter writes one for every Keras
    ``Reshape`` of a model with a dynamic batch (Shape -> StridedSlice -> Pack), e.g. in each
    squeeze-and-excitation block of EfficientNet and MobileNetV3, and for every ``Dense`` applied
    to a 4-D tensor (Tensordot's reshape to ``[-1, C]``: ConvNeXt's pointwise convolutions).
    The module is compiled for fixed input shapes, so such a reshape is imported with a fixed
    target: the converter's recorded shape signature when it has at most one unknown dimension
    (``[-1, 1, 1, 32]``: ``-1`` takes the rest of the elements), else the output's shape in a run
    of the TFLite interpreter at those input shapes (``concrete_shapes()``: tensor index -> shape).
    Any other reshape goes to the frontend's own conversion."""
    from tvm import relax
    from tvm.relax.frontend.tflite import tflite_frontend as F  # noqa: N812

    own = F.OperatorConverter.convert_reshape
    concrete = functools.cache(concrete_shapes)

    def convert_reshape(self, op):
        ins = self.get_input_tensors(op)
        if len(ins) == 2 and self.has_expr(ins[1].tensor_idx) and not ins[0].qnn_params:
            out = self.get_output_tensors(op)[0]
            t = out.tensor
            sig = [
                int(d)
                for d in (
                    t.ShapeSignatureAsNumpy() if t.ShapeSignatureLength() else t.ShapeAsNumpy()
                )
            ]
            if not sig or sum(d < 0 for d in sig) > 1:
                sig = concrete().get(out.tensor_idx)
            if sig:
                x = self.get_expr(ins[0].tensor_idx)
                shape = [int(d) for d in sig]
                # TVM annotates ``shape`` as ``tuple[PrimExprLike] | Expr``; it takes a list too
                return relax.op.reshape(x, shape)  # pyright: ignore[reportArgumentType]
        return own(self, op)

    F.OperatorConverter.convert_reshape = convert_reshape
    try:
        yield
    finally:
        F.OperatorConverter.convert_reshape = own


def _qparams(t: dict) -> QuantParams | None:
    """A tensor's per-tensor integer quantization, or None (float, or per-channel weights)."""
    q = t.get("quantization_parameters") or {}
    dt = np.dtype(t["dtype"])
    if len(q.get("scales", [])) != 1 or not np.issubdtype(dt, np.integer) or dt.itemsize > 2:
        return None
    info = np.iinfo(dt)
    return QuantParams(float(q["scales"][0]), int(q["zero_points"][0]), int(info.min),
                       int(info.max))


def _quantize(x: np.ndarray, d: dict) -> np.ndarray:
    dt = np.dtype(d["dtype"])
    if np.issubdtype(dt, np.integer) and np.issubdtype(x.dtype, np.floating):
        scale, zp = d["quantization"]
        if scale:
            info = np.iinfo(dt)
            return np.clip(np.round(x / scale + zp), info.min, info.max).astype(dt)
    return x.astype(dt, copy=False)


def _dequantize(y: np.ndarray, d: dict) -> np.ndarray:
    q = d.get("quantization") or (0.0, 0)
    if np.issubdtype(y.dtype, np.integer) and q[0]:
        return ((y.astype(np.float32) - q[1]) * q[0]).astype(np.float32)
    return y


def _short_error(e: BaseException) -> str:
    from convlint.analyzers.models.base import _short

    return _short(e)


def _tflite_op(e: BaseException) -> str | None:
    """``"node N (OP)"`` from a TFLite error ("Node number 3 (FULLY_CONNECTED) failed to ...")."""
    import re

    m = re.search(r"failed to delegate (\w+) node #(\d+)", str(e))  # a delegate names the op
    if m:
        return f"node {m.group(2)} ({m.group(1)})"
    m = re.search(r"Node number (\d+) \((\w+)\) failed", str(e))
    return f"node {m.group(1)} ({m.group(2)})" if m else None


def _step(step: str, e: BaseException):
    from convlint.analyzers.errors import StepFailed

    return StepFailed(step, "tflite", _short_error(e), op=_tflite_op(e))


def _builtin_options(buf: bytes) -> dict:
    """``{op index: {option: value}}`` read generically from the flatbuffer's builtin options."""
    import tflite

    names = {v: k for k, v in vars(tflite.BuiltinOptions).items() if isinstance(v, int)}
    model = tflite.Model.GetRootAsModel(buf, 0)
    out: dict = {}
    if model.SubgraphsLength() == 0:
        return out
    sg = model.Subgraphs(0)
    assert sg is not None  # SubgraphsLength() > 0
    for i in range(sg.OperatorsLength()):
        op = sg.Operators(i)
        assert op is not None  # i < OperatorsLength(), so the vector is there
        cls = getattr(tflite, names.get(op.BuiltinOptionsType(), ""), None)
        table = op.BuiltinOptions()
        if cls is None or table is None:
            continue
        obj = cls()
        obj.Init(table.Bytes, table.Pos)
        vals = {}
        for attr in dir(obj):
            if attr.startswith(("_", "Init", "GetRoot")) or attr.endswith(("IsNone", "Length")):
                continue
            try:
                v = getattr(obj, attr)()
            except TypeError:
                continue
            except Exception:
                continue
            vals[attr] = v.tolist() if hasattr(v, "tolist") else v
        out[i] = vals
    return out
