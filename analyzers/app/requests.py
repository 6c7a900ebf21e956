"""The requests of the use cases: what a caller asks for, with its defaults and validation.

Each request is a frozen dataclass that owns its defaults (from ``analyzers.defaults``) and
validates itself on construction; ``from_dict`` builds one from JSON (unknown keys and bad values
are a ConvlintError, CL001, never a traceback) and ``to_dict`` gives the JSON back. The CLI builds
them from its arguments, the language server from its settings, the worker from a job's params:
none of them restates a default.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

from convlint.analyzers import defaults as D
from convlint.analyzers.errors import ConvlintError

_R = TypeVar("_R", bound="_Request")


class _Request:
    """``from_dict``/``to_dict`` for the dataclasses below."""

    @classmethod
    def from_dict(cls: type[_R], d: dict | None) -> _R:
        d = dict(d or {})
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConvlintError(f"{cls.__name__}: unknown option(s) {', '.join(unknown)}")
        # None means "the default", as an argparse option that was not given
        try:
            return cls(**{k: v for k, v in d.items() if v is not None})
        except TypeError as e:  # a required field is missing
            raise ConvlintError(f"{cls.__name__}: {e}") from None

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def validate(cls, name: str, value: Any) -> Any:
        """``value`` for the option ``name`` as a request of this type would hold it, judged by
        the request's own validation (ConvlintError when refused): what callers that keep an
        option before they build the request (the server's settings) check it with."""
        required = {f.name: "" for f in fields(cls) if f.default is MISSING  # type: ignore[arg-type]
                    and f.default_factory is MISSING}
        return getattr(cls.from_dict({**required, name: value}), name)


def _check(fn, value, name: str):
    try:
        return fn(value, name)
    except ValueError as e:
        raise ConvlintError(str(e)) from None


def _seq(value, name: str) -> tuple | None:
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise ConvlintError(f"{name}: expected a list of numbers, got {value!r}") from None


@dataclass(frozen=True)
class DiffRequest(_Request):
    """Check one converted model against its source (``convlint diff``, one pair of ``convlint
    check``, the server's pair check): the differential check, then localization and repair."""

    source: str
    target: str
    num_inputs: int = D.NUM_INPUTS
    seed: int = D.SEED
    atol: float = D.ATOL
    rtol: float = D.RTOL
    inputs: str | None = None  # a .npy, .npz or folder of images instead of random inputs
    scale: float = 1.0  # image preprocessing
    mean: tuple | None = None
    std: tuple | None = None
    input_shapes: dict = field(default_factory=dict)  # input name -> shape
    use_tvm: bool = True
    localize: bool = True
    repair: bool = False
    output: str | None = None  # the repaired file (default: <stem>.repaired.<ext>)
    unsafe_load: bool = False
    calibration: str | None = None  # calibration data (.npy, .npz, images) to re-quantize with
    save_capture: str | None = None  # write the check's runs and the localization capture here

    def __post_init__(self):
        s = object.__setattr__
        s(self, "num_inputs", _check(D.count, self.num_inputs, "num_inputs"))
        s(self, "seed", _check(D.integer, self.seed, "seed"))
        s(self, "atol", _check(D.tolerance, self.atol, "atol"))
        s(self, "rtol", _check(D.tolerance, self.rtol, "rtol"))
        s(self, "scale", float(_check(D.number, self.scale, "scale")))
        s(self, "mean", _seq(self.mean, "mean"))
        s(self, "std", _seq(self.std, "std"))
        s(self, "input_shapes", dict(self.input_shapes or {}))
        for name in ("use_tvm", "localize", "repair", "unsafe_load"):
            s(self, name, bool(getattr(self, name)))

    def for_pair(self, pair) -> DiffRequest:
        """This request for one configured pair (``config.Pair``): the pair's files, and its own
        tolerances, inputs and number of random inputs where it has them."""
        return replace(
            self,
            source=pair.source,
            target=pair.target,
            atol=self.atol if pair.atol is None else pair.atol,
            rtol=self.rtol if pair.rtol is None else pair.rtol,
            inputs=pair.inputs,
            num_inputs=self.num_inputs if pair.num_inputs is None else pair.num_inputs,
        )

    def pipeline_options(self):
        from convlint.analyzers.differential.check import DiffOptions
        from convlint.analyzers.pipeline import PipelineOptions

        d = DiffOptions(num_inputs=self.num_inputs, seed=self.seed, atol=self.atol, rtol=self.rtol,
                        inputs_path=self.inputs, scale=self.scale,
                        mean=list(self.mean) if self.mean else None,
                        std=list(self.std) if self.std else None,
                        input_shapes=dict(self.input_shapes), use_tvm=self.use_tvm)
        return PipelineOptions(d, localize=self.localize, repair=self.repair, output=self.output,
                               unsafe_load=self.unsafe_load, calibration=self.calibration,
                               save_capture=self.save_capture)


@dataclass(frozen=True)
class TraceRequest(_Request):
    """Run a conversion script with its converters instrumented and check every conversion it
    makes (``convlint trace``, the server's trace command)."""

    script: str
    allow_exec: bool = False
    timeout: float = D.SCRIPT_TIMEOUT
    python: str | None = None  # the interpreter that runs the script (default: convlint's)
    cwd: str | None = None  # where the script runs (default: the current directory)
    args: tuple = ()
    verify_fixes: bool = True
    write_fixed: str | None = None  # write the verified rewritten script here
    memory_mb: int | None = None  # address-space limit (None: the machine's memory; 0: none)
    keep_outputs: bool = False  # the script's outputs where it writes them (default: the cache)
    atol: float = D.ATOL
    rtol: float = D.RTOL
    num_inputs: int = D.NUM_INPUTS
    seed: int = D.SEED
    use_tvm: bool = True
    localize: bool = True
    unsafe_load: bool = False
    # re-quantize a faulty full-integer conversion (CL205) on the calibration samples the
    # converter drew (captured), or on the DiffRequest's calibration when given
    repair: bool = False

    def __post_init__(self):
        s = object.__setattr__
        s(self, "timeout", _check(D.timeout, self.timeout, "timeout"))
        s(self, "args", tuple(str(a) for a in self.args))
        s(self, "repair", bool(self.repair))
        s(self, "atol", _check(D.tolerance, self.atol, "atol"))
        s(self, "rtol", _check(D.tolerance, self.rtol, "rtol"))
        s(self, "num_inputs", _check(D.count, self.num_inputs, "num_inputs"))
        if self.memory_mb is not None and int(self.memory_mb) < 0:
            raise ConvlintError(
                f"memory_mb: expected a number of at least 0, got {self.memory_mb!r}"
            )

    def options(self, diff: DiffRequest | None = None):
        """The trace's options; ``diff`` carries the check options the CLI has beyond these."""
        from convlint.analyzers.scripts.trace import TraceOptions

        d = diff or DiffRequest("", "")
        d = replace(d, atol=self.atol, rtol=self.rtol, num_inputs=self.num_inputs, seed=self.seed,
                    use_tvm=self.use_tvm, localize=self.localize, unsafe_load=self.unsafe_load,
                    repair=self.repair, output=None)
        return TraceOptions(d.pipeline_options(), allow_exec=self.allow_exec, timeout=self.timeout,
                            python=self.python, cwd=self.cwd, args=list(self.args),
                            verify_fixes=self.verify_fixes, write_fixed=self.write_fixed,
                            memory_mb=self.memory_mb, keep_outputs=self.keep_outputs)


@dataclass(frozen=True)
class TrainRequest(_Request):
    """Run a training script with probes and check its training (``convlint train-check``, the
    server's train-check command)."""

    script: str
    allow_exec: bool = False
    max_epochs: int | None = D.MAX_EPOCHS
    max_steps: int | None = D.MAX_STEPS
    timeout: float = D.SCRIPT_TIMEOUT
    every: int | None = None  # record every k-th step (None: Keras about 120 steps, PyTorch all)
    python: str | None = None
    cwd: str | None = None
    args: tuple = ()
    memory_mb: int | None = None
    verify_fix: bool = False  # apply each proposed fix to a copy and rerun a short training
    verify_budget: float = D.VERIFY_BUDGET  # seconds for all the reruns together
    write_fixed: str | None = None  # write the verified fixed copy here (never over the script)

    def __post_init__(self):
        s = object.__setattr__
        s(self, "timeout", _check(D.timeout, self.timeout, "timeout"))
        s(self, "verify_budget", _check(D.timeout, self.verify_budget, "verify_budget"))
        s(self, "args", tuple(str(a) for a in self.args))
        for name in ("max_epochs", "max_steps", "every"):
            v = getattr(self, name)
            if v is not None:
                s(self, name, _check(D.count, v, name))
        if self.memory_mb is not None and int(self.memory_mb) < 0:
            raise ConvlintError(
                f"memory_mb: expected a number of at least 0, got {self.memory_mb!r}"
            )

    def options(self, thresholds: Any = None):
        from convlint.analyzers.training.check import TrainOptions

        opts = TrainOptions(allow_exec=self.allow_exec, max_epochs=self.max_epochs,
                            max_steps=self.max_steps, timeout=self.timeout, every=self.every,
                            python=self.python, cwd=self.cwd, args=list(self.args),
                            memory_mb=self.memory_mb, verify_fix=self.verify_fix,
                            verify_budget=self.verify_budget, write_fixed=self.write_fixed)
        if thresholds is not None:
            opts.thresholds = thresholds
        return opts


@dataclass(frozen=True)
class CheckRequest(_Request):
    """Lint a project: its conversion scripts, its model pairs and, with ``train``, its training
    scripts (``convlint check``). Unset options (None) take the project configuration's value."""

    paths: tuple = ()  # scripts or directories (default: the configuration's folder, or ".")
    config: str | None = None  # the config file (default: the nearest one above the first path)
    select: tuple | None = None  # only these rules or prefixes (default: the config's)
    ignore: tuple | None = None  # never these rules or prefixes (default: the config's)
    jobs: int = 1  # model pairs checked in parallel worker processes
    use_cache: bool = True
    use_tvm: bool = True
    train: bool | None = None  # None: the config's ``train``
    allow_exec: bool | None = None  # None: the config's ``allow-exec``
    changed_since: str | None = None  # a git ref: only the pairs whose files changed since
    baseline: str | None = None  # compare the pairs with this stored run
    update_baseline: bool = False  # write this run's pairs to ``baseline``
    executor: str = "local"  # "local" (a process pool of ``jobs``) or "ray" (one Ray task a pair)
    ray_address: str | None = None  # with "ray": the cluster (default: a local Ray)

    def __post_init__(self):
        s = object.__setattr__
        s(self, "paths", tuple(str(p) for p in self.paths))
        s(self, "jobs", _check(D.count, self.jobs, "jobs"))
        for name in ("select", "ignore"):
            v = getattr(self, name)
            if v is not None:
                s(self, name, tuple(str(c) for c in v))
        for name in ("use_cache", "use_tvm", "update_baseline"):
            s(self, name, bool(getattr(self, name)))

    def options(self):
        """The engine's CheckOptions: the configuration loaded, this request's values over it."""
        import os

        from convlint.analyzers import config as C
        from convlint.analyzers.project import CheckOptions

        cfg = C.load(self.config or C.find_config(self.paths[0] if self.paths else "."))
        for key in ("select", "ignore"):
            v = getattr(self, key)
            if v is not None:
                cfg = replace(
                    cfg, **{key: getattr(C.parse({key: list(v)}, "the command line"), key)}
                )
        paths = list(self.paths) or [
            os.path.relpath(os.path.dirname(cfg.path) or ".") if cfg.path else "."
        ]
        return CheckOptions(
            paths,
            cfg,
            jobs=self.jobs,
            use_cache=self.use_cache,
            use_tvm=self.use_tvm,
            train=cfg.train if self.train is None else self.train,
            allow_exec=cfg.allow_exec if self.allow_exec is None else self.allow_exec,
            changed_since=self.changed_since,
            baseline=self.baseline,
            update_baseline=self.update_baseline,
            executor=self.executor,
            ray_address=self.ray_address,
        )
