# pyright: reportAttributeAccessIssue=false, reportOptionalMemberAccess=false
# (executorch's program schema types its values as unions of dataclasses: the runner reads the
# member each value's tag selects, which pyright cannot narrow)
"""ExecuTorch programs (``.pte``): run with ExecuTorch's own Python runtime
(``executorch.runtime``).

Layers are the program's kernel calls (``aten::convolution``, ``aten::addmm``, ...), their constant
tensors as weights (a weight the program transposes at run time with ``permute_copy`` is read
through it); a delegate (XNNPACK) is one layer whose insides are the backend's own payload.
Per-layer outputs come from ETDump: the program runs again with an event tracer and a debug buffer,
which records every kernel call's output tensor. Inside a delegate, and for a program whose tensors
are float16 (ETDump does not record half tensors), only the outputs are compared: the metadata says
so (``conversion_evidence.per_layer_capture``). Relax has no ExecuTorch importer: the TVM
cross-check of a ``.pte`` is skipped with a note (CL011), never a crash.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from convlint.analyzers.errors import ModelLoadError, StepFailed
from convlint.analyzers.models.base import (
    LayerInfo,
    Runner,
    TensorSpec,
    layout_hint,
    max_model_bytes,
)

log = logging.getLogger(__name__)

# ExecuTorch's ScalarType codes (executorch/exir/scalar_type.py)
_DTYPES = {
    0: np.uint8,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.int64,
    5: np.float16,
    6: np.float32,
    7: np.float64,
    11: np.bool_,
}


def scalar_dtype(code) -> np.dtype:
    return np.dtype(_DTYPES.get(int(getattr(code, "value", code)), np.float32))


def _check_names(path: str, program) -> None:
    """Every name the runtime may print (methods, operators, delegates) must be printable ASCII:
    the runtime's log hook aborts the process on text that is not UTF-8."""
    names = []
    for plan in program.execution_plan:
        names += (
            [plan.name] + [o.name for o in plan.operators] + [o.overload for o in plan.operators]
        )
        names += [d.id for d in plan.delegates]
    for n in names:
        if not isinstance(n, str) or not n.isascii() or not n.isprintable():
            raise ModelLoadError(
                f"{path}: a corrupt ExecuTorch program (a name that is not "
                f"printable text: {n!r:.60})",
                path=path,
            )


def _check_indices(path: str, plan) -> None:
    """Every value, operator and delegate index of the plan must point inside its table."""
    n = len(plan.values)
    refs = list(plan.inputs) + list(plan.outputs)
    for chain in plan.chains:
        for ins in chain.instructions:
            a = ins.instr_args
            refs += list(getattr(a, "args", []))
            if type(a).__name__ == "KernelCall" and not 0 <= a.op_index < len(plan.operators):
                refs.append(-1)
            if type(a).__name__ == "DelegateCall" and not 0 <= a.delegate_index < len(
                plan.delegates
            ):
                refs.append(-1)
    if not plan.chains or any(not 0 <= int(i) < n for i in refs):
        raise ModelLoadError(
            f"{path}: a corrupt ExecuTorch program (an index outside its tables)", path=path
        )


class ExecuTorchRunner(Runner):
    format = "executorch"
    tvm_in_thread = False  # torch.export / torch.onnx.export: process-wide modes
    backend = "executorch"

    def _load_impl(self) -> None:
        # the flatbuffer reader of ExecuTorch's own serializer: the only reader of a .pte's
        # execution plan the package ships (no public API exposes the plan)
        from executorch.exir._serialize._program import deserialize_pte_binary
        from executorch.runtime import Runtime, Verification

        from convlint.analyzers.models.base import _failing_op, _short

        data = Path(self.path).read_bytes()
        if data[4:6] != b"ET" or not data[6:8].isdigit() or data[8:12] != b"eh00":
            # the runtime logs a bad header's raw bytes through a hook that aborts the process on
            # non-UTF-8 text: a header it cannot read is refused here, before the runtime sees it
            raise ModelLoadError(
                f"{self.path}: not an ExecuTorch program (no ETxx identifier "
                "followed by an 'eh00' extended header)",
                path=self.path,
            )
        self._plan_program = deserialize_pte_binary(data).program
        if not self._plan_program.execution_plan:
            raise ModelLoadError(
                f"{self.path}: an ExecuTorch program with no method", path=self.path
            )
        self.plan = self._plan_program.execution_plan[0]
        _check_names(self.path, self._plan_program)
        _check_indices(self.path, self.plan)
        planned = sum(int(n) for n in self.plan.non_const_buffer_sizes[1:])
        if planned > max_model_bytes():  # the runtime allocates it all before it runs anything
            raise ModelLoadError(
                f"{self.path}: refused: the program plans {planned} bytes of working memory (the "
                f"limit is {max_model_bytes()} bytes)",
                path=self.path,
                hint="raise CONVLINT_MAX_MODEL_BYTES if the model is trusted",
            )
        try:
            self._program = Runtime.get().load_program(
                data, verification=Verification.InternalConsistency
            )
            self._method = self._program.load_method(self.plan.name)
        except Exception as e:  # the runtime refuses the program (a missing kernel or backend)
            raise StepFailed("load", self.backend, _short(e), op=_failing_op(e)) from e

    # -- the execution plan ----------------------------------------------------------------
    def _value(self, i: int):
        return self.plan.values[i].val

    def _scalar(self, i: int):
        v = self._value(i)
        for attr in ("int_val", "double_val", "bool_val"):
            if hasattr(v, attr):
                return getattr(v, attr)
        if hasattr(v, "items") and type(v).__name__ == "IntList":
            return [self._scalar(int(j)) for j in v.items]
        if hasattr(v, "items"):
            return list(v.items)
        return None

    def _constant(self, i: int) -> np.ndarray | None:
        t = self._value(i)
        if type(t).__name__ != "Tensor" or t.allocation_info is not None or t.data_buffer_idx <= 0:
            return None
        buffers = self._plan_program.constant_buffer
        if t.data_buffer_idx >= len(buffers):
            return None
        dt = scalar_dtype(t.scalar_type)
        n = int(np.prod(t.sizes)) if t.sizes else 1
        raw = np.frombuffer(buffers[t.data_buffer_idx].storage, dt, count=n)
        return raw.reshape(t.sizes).astype(np.float32) if dt.kind == "f" else raw.reshape(t.sizes)

    def _spec(self, i: int, name: str) -> TensorSpec:
        t = self._value(i)
        dims = tuple(int(d) for d in getattr(t, "sizes", ()))
        return TensorSpec(
            name, dims, str(scalar_dtype(getattr(t, "scalar_type", 6))), layout_hint(dims)
        )

    def _input_specs_impl(self):
        return [self._spec(i, f"input_{k}") for k, i in enumerate(self.plan.inputs)]

    def _output_specs_impl(self):
        return [self._spec(i, f"output_{k}") for k, i in enumerate(self.plan.outputs)]

    def _calls(self) -> list:
        """``(name, op, args)`` of each instruction in order; ``op`` names a kernel or a
        delegate."""
        out, seen = [], {}
        for ins in self.plan.chains[0].instructions:
            a = ins.instr_args
            kind = type(a).__name__
            if kind == "KernelCall":
                op = self.plan.operators[a.op_index].name
            elif kind == "DelegateCall":
                op = f"delegate:{self.plan.delegates[a.delegate_index].id}"
            else:
                out.append(None)
                continue
            short = op.split("::")[-1].split(":")[-1]
            k = seen[short] = seen.get(short, -1) + 1
            out.append((f"{short}_{k}", op, list(a.args)))
        return out

    def _run_impl(self, inputs: dict) -> dict:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(inputs[s.name])) for s in self.input_specs()]
        res = self._method.execute(args)
        return {
            s.name: np.asarray(r.detach().numpy() if hasattr(r, "detach") else r)
            for s, r in zip(self.output_specs(), res, strict=False)
        }

    def _layers_impl(self):
        producers = {}  # value -> (op, its inputs): to read a weight through permute_copy
        calls = [c for c in self._calls() if c is not None]
        for _, op, args in calls:
            if args:
                producers[args[-1]] = (op, args)
        layers = []
        for name, op, args in calls:
            weights, attrs, inputs = {}, {"op": op, "args": []}, []
            for j, i in enumerate(args[:-1] if not op.startswith("delegate:") else args):
                value = self._constant(i)
                via = producers.get(i)
                if value is None and via and via[0].endswith("permute_copy"):
                    value = self._constant(via[1][0])
                    attrs["transposed_weight"] = True
                if value is not None:
                    weights[f"{name}.arg{j}"] = value
                elif type(self._value(i)).__name__ == "Tensor":
                    inputs.append(f"v{i}")
                    attrs["args"].append(None)
                else:
                    attrs["args"].append(self._scalar(i))
            if op.endswith("permute_copy") and weights:
                continue  # a weight's transpose: part of the layer that reads it
            # the kernel (the larger tensor) first, its bias after: addmm takes the bias first
            weights = dict(sorted(weights.items(), key=lambda kv: -kv[1].ndim))
            layers.append(
                LayerInfo(name, op.split("::")[-1], weights, attrs, inputs, [f"{name}:0"])
            )
        return layers

    def _intermediates_impl(self, inputs: dict) -> dict:
        """Each kernel call's output from ETDump; the outputs only where ETDump cannot see."""
        outs = dict(self.run(inputs))
        if self._capture()[0] != "per-layer":
            return outs
        from convlint.analyzers.models.executorch_etdump import record

        recorded = record(self.path, self.plan.name, [inputs[s.name] for s in self.input_specs()])
        layers = {x.name for x in self._layers_impl()}
        for k, call in enumerate(self._calls()):
            if call is not None and k in recorded and call[0] in layers:
                outs[f"{call[0]}:0"] = recorded[k].astype(np.float32)
        return outs

    def _capture(self) -> tuple:
        """How the intermediates are captured, and why only the outputs where that is so."""
        calls = [c for c in self._calls() if c is not None]
        if any(c[1].startswith("delegate:") for c in calls):
            ids = sorted({c[1].split(":", 1)[1] for c in calls if c[1].startswith("delegate:")})
            return "outputs-only", (
                f"layers inside the {', '.join(ids)} delegate are opaque to "
                "ETDump: only the program's outputs are compared there"
            )
        if any(
            scalar_dtype(getattr(v.val, "scalar_type", 6)) == np.float16 for v in self.plan.values
        ):
            return "outputs-only", (
                "the program computes in float16, which ETDump does not "
                "record: only the program's outputs are compared"
            )
        return "per-layer", None

    def _metadata_impl(self) -> dict:
        dtypes = sorted(
            {
                str(scalar_dtype(v.val.scalar_type))
                for v in self.plan.values
                if type(v.val).__name__ == "Tensor"
            }
        )
        capture, why = self._capture()
        return {
            "converter": "executorch",
            "converter_version": None,
            "conversion_evidence": {
                "tensor_dtypes": dtypes,
                "float16_storage": "float16" in dtypes,
                "quantized_storage": any(d in dtypes for d in ("int8", "uint8")),
                "delegates": sorted({d.id for d in self.plan.delegates}),
                "per_layer_capture": capture,
                "capture_note": why,
            },
        }

    def _tvm_import_impl(self, input_shapes: dict):
        raise StepFailed("compile", "tvm", "TVM's Relax has no ExecuTorch (.pte) importer")
