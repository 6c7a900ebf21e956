"""OpenVINO IR (``.xml`` beside its ``.bin``): run on the OpenVINO CPU runtime.

Layers are the IR's operations (Convolution, Add, Relu, ...; constants are their weights, read
through the Convert an fp16-compressed IR puts after each one); per-layer outputs come from the
same model with every operation's output marked as a model output. The IR runs at f32
(``INFERENCE_PRECISION_HINT``): the CPU plugin's default on bfloat16-capable CPUs is bf16. Relax has
no OpenVINO
importer: the TVM cross-check of an IR is skipped with a note (CL011), never a crash.
"""

from __future__ import annotations

import logging

import numpy as np

from convlint.analyzers.errors import StepFailed
from convlint.analyzers.models.base import LayerInfo, Runner, TensorSpec, layout_hint

log = logging.getLogger(__name__)

# operations that are plumbing, not layers: graph inputs and outputs, constants and the
# conversions and reshapes of constants that make up a weight
_NOT_LAYERS = ("Parameter", "Result", "Constant")
_WEIGHT_PATH = ("Convert", "Reshape", "Unsqueeze", "Squeeze", "Transpose")
# the IR's own precision: on a CPU with bfloat16 units the CPU plugin otherwise computes in
# bf16 by default (an error of about 1e-2), which is a deployment setting, not the file's meaning
F32 = {"INFERENCE_PRECISION_HINT": "f32"}


def _port_name(output) -> str:
    """A stable name for one output port: its tensor name where the IR has one."""
    names = sorted(output.get_names())
    if names:
        return names[0]
    node = output.get_node()
    return f"{node.get_friendly_name()}:{output.get_index()}"


def _constant(node) -> np.ndarray | None:
    """The value of a constant, followed through the ops that only convert or reshape it."""
    seen = 0
    while node.get_type_name() in _WEIGHT_PATH and seen < 4:
        node = node.input_value(0).get_node()
        seen += 1
    if node.get_type_name() != "Constant":
        return None
    return np.asarray(node.get_data()).astype(np.float32) if np.issubdtype(
        np.asarray(node.get_data()).dtype, np.floating) else np.asarray(node.get_data())


def _is_weight_path(node) -> bool:
    return node.get_type_name() in _WEIGHT_PATH and _constant(node) is not None


class OpenVinoRunner(Runner):
    format = "openvino"
    backend = "openvino"

    def _load_impl(self) -> None:
        import openvino as ov

        from convlint.analyzers.models.base import _failing_op, _short

        self._core = ov.Core()
        self.model = self._core.read_model(self.path)
        try:
            self._compiled = self._core.compile_model(self.model, "CPU", F32)
        except Exception as e:  # the runtime refuses the graph: a crash of the load step
            raise StepFailed("load", self.backend, _short(e), op=_failing_op(e)) from e

    def _spec(self, port) -> TensorSpec:
        ps = port.get_partial_shape()
        dims = (
            tuple(d.get_length() if d.is_static else None for d in ps) if ps.rank.is_static else ()
        )
        dtype = str(np.dtype(port.get_element_type().to_dtype()))
        return TensorSpec(_port_name(port), dims, dtype, layout_hint(dims))

    def _input_specs_impl(self):
        return [self._spec(p) for p in self.model.inputs]

    def _output_specs_impl(self):
        return [self._spec(p) for p in self.model.outputs]

    def _run_impl(self, inputs: dict) -> dict:
        from convlint.analyzers.models.base import _failing_op, _short

        try:
            res = self._compiled({p.get_any_name(): inputs[s.name] for p, s in
                                  zip(self._compiled.inputs, self.input_specs(), strict=True)})
        except Exception as e:
            raise StepFailed("run", self.backend, _short(e), op=_failing_op(e)) from e
        return {s.name: np.asarray(res[p]) for p, s in
                zip(self._compiled.outputs, self.output_specs(), strict=True)}

    def _ops(self) -> list:
        return [op for op in self.model.get_ordered_ops()
                if op.get_type_name() not in _NOT_LAYERS and not _is_weight_path(op)]

    def _layers_impl(self):
        layers = []
        for op in self._ops():
            weights, inputs = {}, []
            for i in range(op.get_input_size()):
                src = op.input_value(i)
                value = _constant(src.get_node())
                if value is not None:
                    weights[_port_name(src)] = value
                else:
                    inputs.append(_port_name(src))
            attrs = {}
            for k, v in op.get_attributes().items():
                attrs[k] = list(v) if isinstance(v, (list, tuple)) else (
                    v if isinstance(v, (int, float, str, bool)) else str(v))
            layers.append(LayerInfo(op.get_friendly_name(), op.get_type_name(), weights, attrs,
                                    inputs, [_port_name(o) for o in op.outputs()]))
        return layers

    def _intermediates_impl(self, inputs: dict) -> dict:
        """Every operation's outputs, from a copy of the model with each one marked an output."""
        from convlint.analyzers.models.base import _failing_op, _short

        model = self._core.read_model(self.path)
        ports = [o for op in model.get_ordered_ops()
                 if op.get_type_name() not in _NOT_LAYERS and not _is_weight_path(op)
                 for o in op.outputs()]
        # named before add_outputs, which gives an unnamed port a name of its own
        names = [s.name for s in self.output_specs()] + [_port_name(o) for o in ports]
        try:
            model.add_outputs(ports)
            compiled = self._core.compile_model(model, "CPU", F32)
            res = compiled({p.get_any_name(): inputs[s.name] for p, s in
                            zip(compiled.inputs, self.input_specs(), strict=True)})
        except Exception as e:
            raise StepFailed("run", self.backend, _short(e), op=_failing_op(e)) from e
        # the compiled model's outputs: the model's own, then the added ones, in order
        return {n: np.asarray(res[p]) for n, p in zip(names, compiled.outputs, strict=False)}

    def _metadata_impl(self) -> dict:
        rt = self.model.get_rt_info()
        version = None
        try:
            version = str(rt["Runtime_version"]) if "Runtime_version" in rt else None
        except Exception:  # noqa: BLE001 - an IR without run-time info: no version to report
            log.debug("no Runtime_version in %s", self.path, exc_info=True)
        dtypes = sorted(
            {
                str(np.dtype(op.get_element_type().to_dtype()))
                for op in self.model.get_ordered_ops()
                if op.get_type_name() == "Constant"
            }
        )
        return {
            "converter": "openvino",
            "converter_version": version,
            "conversion_evidence": {
                "tensor_dtypes": dtypes,
                "float16_storage": "float16" in dtypes,
                "quantized_storage": any(d in dtypes for d in ("int8", "uint8")),
            },
        }

    def _tvm_import_impl(self, input_shapes: dict):
        raise StepFailed("compile", "tvm", "TVM's Relax has no OpenVINO IR importer")
