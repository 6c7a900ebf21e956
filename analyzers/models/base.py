"""The Runner interface every model format implements (after Polygraphy's backends).

A runner is created from a path and loads nothing until first used. Public methods check state
and wrap framework exceptions; subclasses fill in the ``*_impl`` hooks. Outputs are plain numpy.

Inputs and outputs are dicts ``{tensor name: ndarray}`` in the order of the specs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from convlint.analyzers.errors import ConvlintError, ModelLoadError, StepFailed

DEFAULT_MAX_BYTES = 2 * 1024**3  # 2 GiB; configurable with CONVLINT_MAX_MODEL_BYTES


@dataclass(frozen=True)
class TensorSpec:
    """An input or output: ``shape`` holds ``None`` for dynamic dims; ``layout`` is a hint."""

    name: str
    shape: tuple
    dtype: str
    layout: str | None = None  # "NHWC", "NCHW" or None

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype,
                "layout": self.layout}


@dataclass
class LayerInfo:
    """One layer (Keras, torch module) or node (ONNX, TFLite op) of a model."""

    name: str
    op_type: str
    weights: dict = field(default_factory=dict)  # name -> np.ndarray
    attributes: dict = field(default_factory=dict)
    inputs: list = field(default_factory=list)  # tensor names, where the format has them
    outputs: list = field(default_factory=list)
    semantics: dict = field(default_factory=dict)  # the format-neutral description (describe.py)


@dataclass(frozen=True)
class QuantParams:
    """How an activation tensor is stored in integers (per-tensor affine quantization): what
    full-integer targets compute with, so the quantization step a layer's error is judged by."""

    scale: float
    zero_point: int
    qmin: int
    qmax: int

    @property
    def range(self) -> tuple:
        """The float interval the integers represent: values outside it are clipped."""
        return (self.scale * (self.qmin - self.zero_point),
                self.scale * (self.qmax - self.zero_point))


def layout_hint(shape: tuple) -> str | None:
    """Guess NHWC or NCHW from a rank-4 image-like shape (channels are the small dim)."""
    if len(shape) != 4:
        return None
    c_last, c_first = shape[3], shape[1]
    small = {1, 3, 4}
    if (
        isinstance(c_last, int)
        and c_last in small
        and not (isinstance(c_first, int) and c_first in small)
    ):
        return "NHWC"
    if (
        isinstance(c_first, int)
        and c_first in small
        and not (isinstance(c_last, int) and c_last in small)
    ):
        return "NCHW"
    return None


def content_hash(path: str | os.PathLike, *, missing_ok: bool = False) -> str:
    """sha256 of a file, or of every file (path and bytes) under a directory. With
    ``missing_ok`` a file that cannot be read hashes as ``<missing>`` (a cache key of a pair
    whose file is gone is still a key, and differs from the one it had)."""
    h = hashlib.sha256()
    p = Path(path)
    files = [p] if p.is_file() or not p.is_dir() else sorted(q for q in p.rglob("*") if q.is_file())
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        try:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        except OSError:
            if not missing_ok:
                raise
            h.update(b"<missing>")
    return h.hexdigest()


def max_model_bytes() -> int:
    try:
        return int(os.environ.get("CONVLINT_MAX_MODEL_BYTES", DEFAULT_MAX_BYTES))
    except ValueError:
        return DEFAULT_MAX_BYTES


class Runner:
    """Base class. Subclasses set ``format`` and ``backend`` and implement the ``*_impl`` hooks."""

    format = "?"
    backend = "?"

    def __init__(self, path: str | os.PathLike):
        self.path = str(path)
        self._loaded = False
        self._hash: str | None = None
        self.tvm_route: str | None = None  # how the model reached TVM, once to_tvm() ran
        # converters the TVM route should not pass through when another route exists (the one
        # that made the other model of the pair: its evidence would not be independent)
        self.tvm_avoid: frozenset = frozenset()
        # faults of the runtime itself that the runner worked around while loading (a delegate
        # that fails where the plain kernels run): ``{"step", "backend", "message", "op",
        # "fallback"}``, reported as runtime findings by the check
        self.runtime_faults: list = []

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Runner:
        return self  # loading stays lazy: errors surface where the caller can report them

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._loaded = False

    def load(self) -> Runner:
        if self._loaded:
            return self
        check_size(self.path)
        try:
            self._load_impl()
        except (ConvlintError, StepFailed):
            raise
        except ModuleNotFoundError as e:  # the format's framework is not installed (CL005)
            from convlint.analyzers.extras import missing_from

            missing = missing_from(e, f"reading a {self.format} model", path=self.path)
            if missing is None:
                raise
            raise missing from None
        except Exception as e:  # a framework refused the bytes
            raise ModelLoadError(
                f"{self.path}: cannot be read as a {self.format} model: {_short(e)}",
                path=self.path,
                hint="check that the file is complete and of the format its extension says",
            ) from e
        self._loaded = True
        return self

    @property
    def hash(self) -> str:
        if self._hash is None:
            self._hash = content_hash(self.path)
        return self._hash

    # -- public API ------------------------------------------------------------------------
    def input_specs(self) -> list[TensorSpec]:
        self.load()
        return self._input_specs_impl()

    def output_specs(self) -> list[TensorSpec]:
        self.load()
        return self._output_specs_impl()

    def run(self, inputs: dict) -> dict:
        """Run once in the native runtime. Raises StepFailed(step='run') on a runtime error."""
        self.load()
        try:
            out = self._run_impl(inputs)
        except (ConvlintError, StepFailed):
            raise
        except Exception as e:
            raise StepFailed("run", self.backend, _short(e), op=_failing_op(e)) from e
        return {k: np.asarray(v) for k, v in out.items()}

    def layers(self) -> list[LayerInfo]:
        """The layer table, each layer described in the common vocabulary (``describe``)."""
        from convlint.analyzers.models.describe import describe

        self.load()
        return describe(self.format, self._layers_impl())

    def intermediates(self, inputs: dict) -> dict:
        """Per-layer outputs in forward order, ``{layer or tensor name: ndarray}``."""
        self.load()
        try:
            return self._intermediates_impl(inputs)
        except (ConvlintError, StepFailed):
            raise
        except Exception as e:
            raise StepFailed("run", self.backend, _short(e), op=_failing_op(e)) from e

    # the TVM leg may run in a background thread beside the native runs (False where importing
    # into TVM runs a framework exporter that is not thread-safe against the native runs)
    tvm_in_thread = True

    # the per-layer run computes the model's outputs with the same kernels as ``run`` (so one
    # execution gives both); runners whose capture runs other kernels keep False
    capture_runs_outputs = False

    def run_capturing(self, inputs: dict) -> tuple[dict, dict]:
        """``(run(inputs), intermediates(inputs))``, in one execution where the runner's per-layer
        run computes the outputs with ``run``'s kernels (``capture_runs_outputs``), else two."""
        inter = self.intermediates(inputs)
        if self.capture_runs_outputs:
            outs = self._outputs_from(inter)
            if outs is not None:
                return outs, inter
        return self.run(inputs), inter

    def _outputs_from(self, inter: dict) -> dict | None:
        """The model's outputs, by output name, read from an ``intermediates`` dict (or None)."""
        names = [s.name for s in self.output_specs()]
        if not all(n in inter for n in names):
            return None
        return {n: np.asarray(inter[n]) for n in names}

    def activation_quantization(self) -> dict:
        """``{tensor name: QuantParams}`` for the activations the model computes in integers (a
        full-integer model; a graph input maps to the parameters it is quantized with). Empty for
        float models and for weight-only quantization, whose activations stay float."""
        self.load()
        return self._activation_quantization_impl()

    def metadata(self) -> dict:
        """Producer, version and other facts the file records about its conversion."""
        self.load()
        return self._metadata_impl()

    def to_tvm(self, input_shapes: dict):
        """Import into TVM Relax and compile for llvm; returns a :class:`TVMRunner`.

        ``input_shapes`` fixes every dynamic dim. Raises StepFailed(step='compile',
        backend='tvm') when the frontend or the compiler refuses the model.
        """
        from convlint.analyzers.models.tvm_runner import compile_cached

        self.load()
        builder = self._tvm_import_impl(input_shapes)
        key = f"{self.hash}|{sorted(input_shapes.items())}|{type(self).__name__}"
        if self.tvm_avoid:
            key += f"|avoid={sorted(self.tvm_avoid)}"
        runner = compile_cached(key, builder, self._input_names_for_tvm())
        self.tvm_route = runner.route
        return runner

    # -- hooks -------------------------------------------------------------------------------
    def _load_impl(self) -> None:
        raise NotImplementedError

    def _input_specs_impl(self) -> list[TensorSpec]:
        raise NotImplementedError

    def _output_specs_impl(self) -> list[TensorSpec]:
        raise NotImplementedError

    def _run_impl(self, inputs: dict) -> dict:
        raise NotImplementedError

    def _layers_impl(self) -> list[LayerInfo]:
        raise NotImplementedError

    def _intermediates_impl(self, inputs: dict) -> dict:
        raise NotImplementedError

    def _metadata_impl(self) -> dict:
        return {}

    def _activation_quantization_impl(self) -> dict:
        return {}

    def _tvm_import_impl(self, input_shapes: dict):
        """Return a zero-argument ``builder`` (called only on a cache miss) that returns
        ``(route, IRModule)``, the route describing the import path taken."""
        raise NotImplementedError

    def _input_names_for_tvm(self) -> list[str]:
        return [s.name for s in self.input_specs()]


def check_size(path: str) -> None:
    p = Path(path)
    if not p.exists():
        raise ModelLoadError(f"{path}: no such file or directory", path=path)
    if p.is_file():
        size = p.stat().st_size
        if size == 0:
            raise ModelLoadError(f"{path}: the file is empty", path=path)
        limit = max_model_bytes()
        if size > limit:
            raise ModelLoadError(
                f"{path}: {size} bytes is over the size limit of {limit} bytes",
                path=path, hint="raise it with CONVLINT_MAX_MODEL_BYTES if the model is trusted")
    from convlint.analyzers.models import containers

    containers.check(path, max_model_bytes())


def _short(e: BaseException, limit: int = 600) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= limit else text[:limit] + " ..."


def _failing_op(e: BaseException) -> str | None:
    """Pull a node or op name out of a runtime's error text, where it names one."""
    import re

    text = str(e)
    m = re.search(r'In Node, \("([^"]*)", (\w+)', text)  # onnxruntime's INVALID_GRAPH
    if m:
        return f"{m.group(1)} ({m.group(2)})" if m.group(1) else m.group(2)
    m = re.search(r"running (\w+) node\. Name:'([^']*)'", text)  # onnxruntime at run time
    if m:
        return f"{m.group(2)} ({m.group(1)})" if m.group(2) else m.group(1)
    for pat in (
        r"[Nn]ode(?: name)?[:=]?\s*'?\"?([\w/.:;\-]+)",
        r"[Oo]p(?:erator)?\s*'?\"?([A-Z][\w]+)",
        r"OpNotImplemented:?\s*.*?([A-Z_][A-Z0-9_]+)",
    ):
        m = re.search(pat, text)
        if m:
            return m.group(1)
    return None
