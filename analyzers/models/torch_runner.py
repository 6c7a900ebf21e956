"""PyTorch: ExportedProgram (``.pt2``, ``torch.export.load``) and TorchScript (``.pt``,
``torch.jit.load``). Neither unpickles arbitrary Python objects.

TVM routes: ``.pt2`` is re-exported with the check's static shapes and imported with
``relax.frontend.torch.from_exported_program``. TorchScript has no Relax frontend, so it goes
through ``torch.onnx.export(dynamo=False)`` and ``relax.frontend.onnx``; its per-layer
intermediates come from the same ONNX export run on onnxruntime.
"""

from __future__ import annotations

import numpy as np

from convlint.analyzers.models.base import LayerInfo, Runner, TensorSpec, layout_hint


def _np_dtype(t) -> str:
    return str(t).replace("torch.", "")


def _to_torch(inputs: dict, names: list):
    import torch

    vals = list(inputs.values())
    return [torch.from_numpy(np.ascontiguousarray(inputs[n] if n in inputs else vals[i]))
            for i, n in enumerate(names)]


def _flat_outputs(out) -> list:
    if isinstance(out, (list, tuple)):
        res = []
        for o in out:
            res.extend(_flat_outputs(o))
        return res
    if isinstance(out, dict):
        return _flat_outputs(list(out.values()))
    return [out]


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)


def _call_args(node) -> tuple[list, dict]:
    """An aten call's arguments in its schema's order, whether the exporter passed them by
    position (torch 2.13: ``conv2d(x, w, b, [1, 1], [1, 1])``) or by keyword (torch 2.5:
    ``conv2d(x, w, bias=b, stride=[1, 1], padding=[1, 1])``); a gap before a keyword argument
    takes the schema's default. Returns the list and the keywords no schema slot took."""
    args, kwargs = list(node.args), dict(node.kwargs)
    schema = getattr(node.target, "_schema", None)
    if schema is None or not kwargs:
        return args, kwargs
    rest = list(schema.arguments)[len(args):]
    last = max((i for i, a in enumerate(rest) if a.name in kwargs), default=-1)
    for a in rest[:last + 1]:
        if a.name in kwargs:
            args.append(kwargs.pop(a.name))
        else:
            args.append(a.default_value if a.has_default_value() else None)
    return args, kwargs


class ExportedProgramRunner(Runner):
    format = "torch-exported"
    tvm_in_thread = False  # torch.export / torch.onnx.export: process-wide modes
    backend = "torch"

    def _load_impl(self) -> None:
        import logging

        import torch

        from convlint.analyzers.errors import ModelLoadError
        from convlint.analyzers.models.base import _short

        # torch.export.load logs the real error with its traceback and raises "check the
        # warnings above": keep the record for the message, print nothing
        logger = logging.getLogger("torch.export")
        records: list[logging.LogRecord] = []
        keep = logging.Handler()
        keep.emit = lambda record: records.append(record)  # emit's parameter is not positional-only
        saved = (logger.handlers[:], logger.propagate)  # torch attaches its own handler here
        logger.handlers[:] = [keep]
        logger.propagate = False
        try:
            self.ep = torch.export.load(self.path)
        except Exception as e:
            logged = [r.exc_info[1] for r in records if r.exc_info and r.exc_info[1] is not None]
            why = _short(logged[-1] if logged else e, 300)
            raise ModelLoadError(
                f"{self.path}: cannot be read as a torch-exported model by torch "
                f"{torch.__version__.split('+')[0]}: {why}",
                path=self.path,
                hint="check that the file is complete; a .pt2 archive's layout changes between "
                "torch releases, so a file saved by a newer torch than this one must be "
                "exported again with this one",
            ) from None
        finally:
            logger.handlers[:], logger.propagate = saved
        self.module = self.ep.module()
        self._specs = None

    def _placeholders(self):
        sig = self.ep.graph_signature
        user = set(sig.user_inputs)
        return [n for n in self.ep.graph.nodes if n.op == "placeholder" and n.name in user]

    def _input_specs_impl(self):
        out = []
        for n in self._placeholders():
            val = n.meta.get("val")
            dims = (
                tuple(int(d) if str(d).isdigit() else None for d in val.shape)
                if val is not None
                else ()
            )
            out.append(
                TensorSpec(
                    n.name,
                    dims,
                    _np_dtype(val.dtype) if val is not None else "float32",
                    layout_hint(dims),
                )
            )
        return out

    def _output_specs_impl(self):
        outs = []
        for node in self.ep.graph.nodes:
            if node.op == "output":
                for i, a in enumerate(_flat_outputs(node.args[0])):
                    val = getattr(a, "meta", {}).get("val")
                    dims = (
                        tuple(int(d) if str(d).isdigit() else None for d in val.shape)
                        if val is not None
                        else ()
                    )
                    outs.append(TensorSpec(f"output_{i}", dims,
                                           _np_dtype(val.dtype) if val is not None else "float32",
                                           layout_hint(dims)))
        return outs

    def _run_impl(self, inputs):
        import torch

        args = _to_torch(inputs, [s.name for s in self.input_specs()])
        try:
            with torch.no_grad():
                out = self.module(*args)
        except Exception as e:  # name the module whose op failed: run it again node by node
            from convlint.analyzers.errors import StepFailed
            from convlint.analyzers.models.base import _short

            raise StepFailed(
                "run", self.backend, _short(e), op=_failing_module(self.module, args)
            ) from e
        return {f"output_{i}": _np(o) for i, o in enumerate(_flat_outputs(out))}


    def _layers_impl(self):
        state = dict(self.ep.state_dict)
        state.update(getattr(self.ep, "constants", {}) or {})
        layers: dict = {}
        owner: dict = {}
        for node in self.ep.graph.nodes:
            if node.op != "call_function":
                continue
            name, cls_name = _layer_of(node)
            owner[node.name] = name
            info = layers.setdefault(name, LayerInfo(name, cls_name))
            for a in node.args:  # producers: modules whose nodes feed this one
                src = owner.get(getattr(a, "name", None))
                if src and src != name and src not in info.inputs:
                    info.inputs.append(src)
            target = (
                str(node.target).split(".")[-2] if "." in str(node.target) else str(node.target)
            )
            args, extra = _call_args(node)
            attrs = [a for a in args[1:] if isinstance(a, (int, float, bool, str, list, tuple))]
            attrs += [
                f"{k}={v}" for k, v in extra.items() if isinstance(v, (str, int, float, bool))
            ]
            info.attributes.setdefault("ops", []).append({"op": target, "args": attrs})
            info.outputs = [node.name]
        for key, val in state.items():
            module = key.rsplit(".", 1)[0] if "." in key else ""
            if module in layers:
                layers[module].weights[key] = _np(val)
        return list(layers.values())

    def _intermediates_impl(self, inputs):
        import torch
        from torch.fx import Interpreter

        gm = self.module
        owner = {
            node.name: _layer_of(node)[0] for node in gm.graph.nodes if node.op == "call_function"
        }
        captured: dict = {}

        class Capture(Interpreter):
            def run_node(self, n):
                r = super().run_node(n)
                if owner.get(n.name) and isinstance(r, torch.Tensor):
                    captured[owner[n.name]] = _np(r)  # the last op of a module is its output
                return r

        with torch.no_grad():
            Capture(gm).run(*_to_torch(inputs, [s.name for s in self.input_specs()]))
        return captured

    def _metadata_impl(self):
        import torch

        return {"producer_name": "torch.export", "torch_version": torch.__version__}

    def _tvm_import_impl(self, input_shapes):
        def build():
            import torch
            from tvm.relax.frontend.torch import from_exported_program

            specs = self.input_specs()
            args = tuple(torch.zeros(tuple(input_shapes[s.name]), dtype=getattr(torch, s.dtype))
                         for s in specs)
            ep = torch.export.export(self.module, args)
            return ("pt2 -> torch.export(static shapes) -> relax.frontend.torch",
                    from_exported_program(ep))

        return build


def _failing_module(gm, args) -> str | None:
    """``"module (op)"`` of the graph node of ``gm`` (an FX GraphModule) that raises on ``args``,
    found by running it again node by node; None when none does."""
    import torch
    from torch.fx import Interpreter

    failed = []

    class Locate(Interpreter):
        def run_node(self, n):
            try:
                return super().run_node(n)
            except Exception:
                if not failed and n.op == "call_function":
                    failed.append(n)
                raise

    try:
        with torch.no_grad():
            Locate(gm).run(*args)
    except Exception:  # noqa: BLE001 - the failure being located
        pass
    if not failed:
        return None
    name, _ = _layer_of(failed[0])
    op = str(failed[0].target).split(".")
    return f"{name} ({op[-2] if len(op) > 1 else op[0]})"


def _layer_of(node) -> tuple:
    """(layer name, type) of an FX node: its innermost module, or, for a functional op called in
    a ``forward`` (``torch.relu(y + s)``), the op itself as ``forward.<node name>``."""
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, cls = list(stack.values())[-1]
        name = _qualname(path)
        if name:
            return name, cls.rsplit(".", 1)[-1] if isinstance(cls, str) else getattr(
                cls, "__name__", str(cls)
            )
    op = str(node.target).split(".")
    return f"forward.{node.name}", (op[-2] if len(op) > 1 else op[0])


def _qualname(path: str) -> str:
    """``L['self'].features[0]`` or ``features.0`` -> ``features.0`` (named_modules style)."""
    import re

    p = re.sub(r"^L\['self'\]\.?", "", path)
    p = re.sub(r"\[(\d+)\]", r".\1", p)
    p = re.sub(r"\[['\"]([^'\"]+)['\"]\]", r".\1", p)
    p = re.sub(r"getattr\(L\['self'\]\.?([^,]*), '([^']+)'\)", r"\1.\2", p)
    return p.strip(".")


class TorchScriptRunner(Runner):
    format = "torchscript"
    tvm_in_thread = False  # torch.export / torch.onnx.export: process-wide modes
    backend = "torch"

    def __init__(self, path, *, input_shapes: dict | None = None):
        super().__init__(path)
        self.given_shapes = input_shapes or {}
        self._onnx = {}

    def close(self) -> None:
        """Remove the temporary ONNX exports made for intermediates and TVM."""
        import shutil
        from pathlib import Path

        for r in self._onnx.values():
            shutil.rmtree(Path(r.path).parent, ignore_errors=True)
        self._onnx = {}
        super().close()

    def _load_impl(self) -> None:
        import zipfile

        import torch

        if not zipfile.is_zipfile(self.path):
            raise ValueError("a TorchScript .pt file is a zip archive, and this one is not")
        self.module = torch.jit.load(self.path, map_location="cpu").eval()

    def _input_specs_impl(self):
        args = self.module.forward.schema.arguments[1:]
        out = []
        for a in args:
            shape = tuple(self.given_shapes.get(a.name, ())) or None
            out.append(
                TensorSpec(a.name, shape if shape else (), "float32", layout_hint(shape or ()))
            )
        return out

    def _output_specs_impl(self):
        return [TensorSpec("output_0", (), "float32")]

    def _run_impl(self, inputs):
        import torch

        try:
            with torch.no_grad():
                out = self.module(*_to_torch(inputs, [s.name for s in self.input_specs()]))
        except Exception as e:  # name the module whose op failed, from the script traceback
            from convlint.analyzers.errors import StepFailed
            from convlint.analyzers.models.base import _short

            raise StepFailed("run", self.backend, _short(e), op=_script_failure(str(e))) from e
        return {f"output_{i}": _np(o) for i, o in enumerate(_flat_outputs(out))}

    def _layers_impl(self):
        layers = []
        for name, mod in self.module.named_modules():
            weights = {
                f"{name}.{k}" if name else k: _np(v)
                for k, v in list(mod.named_parameters(recurse=False))
                + list(mod.named_buffers(recurse=False))
            }
            info = LayerInfo(name, getattr(mod, "original_name", type(mod).__name__), weights)
            conv = _conv_args(mod)
            if conv:
                info.attributes["conv"] = conv
            layers.append(info)
        return [layer for layer in layers if layer.name]

    def as_onnx(self, input_shapes: dict):
        """The module exported to ONNX with static shapes (cached per shape), as an OnnxRunner."""
        import os
        import tempfile

        import torch

        from convlint.analyzers.models.onnx_runner import OnnxRunner

        key = tuple(sorted((k, tuple(v)) for k, v in input_shapes.items()))
        if key not in self._onnx:
            specs = self.input_specs()
            args = tuple(torch.zeros(tuple(input_shapes[s.name])) for s in specs)
            d = tempfile.mkdtemp(prefix="convlint-ts-")
            path = os.path.join(d, "model.onnx")
            torch.onnx.export(self.module, args, path, dynamo=False, opset_version=17,
                              input_names=[s.name for s in specs])
            self._onnx[key] = OnnxRunner(path)
        return self._onnx[key]

    def _intermediates_impl(self, inputs):
        shapes = {k: tuple(np.asarray(v).shape) for k, v in inputs.items()}
        return self.as_onnx(shapes).intermediates(inputs)

    def _tvm_import_impl(self, input_shapes):
        def build():
            from tvm.relax.frontend.onnx import from_onnx

            onnx_runner = self.as_onnx(input_shapes).load()
            return (
                "torchscript -> torch.onnx.export(dynamo=False, opset 17) -> relax.frontend.onnx",
                from_onnx(
                    onnx_runner.model, shape_dict={k: list(v) for k, v in input_shapes.items()}
                ),
            )

        return build


def _script_failure(message: str) -> str | None:
    """``"module (op)"`` from the TorchScript interpreter's serialized-code traceback (a script
    module has no FX graph to re-run node by node): each frame underlines its failing call
    (``~~~ <--- HERE``); the outer frames' ``(name).forward`` calls give the module path, the
    innermost frame's ``torch.op(`` the op. None when the message has no such frames."""
    import re

    code = message.split("Traceback of TorchScript, original code")[0]
    lines = code.splitlines()
    marked = [lines[i - 1][x.index("~"):] for i, x in enumerate(lines)
              if "<--- HERE" in x and "~" in x and i > 0]
    path = [m.group(1) for line in marked[:-1] if (m := re.match(r"\(?(\w+)\)\.forward\(", line))]
    op = re.match(r"torch\.(?:ops\.\w+\.)?(\w+)\(", marked[-1]) if marked else None
    if not path or op is None:
        return None
    return f"{'.'.join(path)} ({op.group(1)})"


def _conv_args(mod) -> dict:
    """The constant arguments (stride, padding, dilation, groups, ...) of the one
    ``aten::_convolution`` in a script module's own forward graph: tracing bakes a Conv2d's
    geometry into the graph and keeps no attribute for it. Empty when there is none."""
    import torch

    if not mod._c._has_method("forward"):
        return {}
    ops = [n for n in mod.graph.nodes() if n.kind() == "aten::_convolution"]
    if len(ops) != 1:
        return {}
    schema = torch._C.parse_schema(ops[0].schema())
    out = {}
    for a, v in zip(schema.arguments, ops[0].inputs(), strict=False):
        n = v.node()
        if n.kind() == "prim::Constant":
            out[a.name] = v.toIValue()
        elif n.kind() == "prim::ListConstruct" and all(
                x.node().kind() == "prim::Constant" for x in n.inputs()):
            out[a.name] = [x.toIValue() for x in n.inputs()]
    return out
