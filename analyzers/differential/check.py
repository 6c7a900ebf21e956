"""The differential check: run source and target, natively and through TVM, on the same inputs.

Four executions per sample: S (source, native), S' (source, TVM), T (target, native) and
T' (target, TVM). The verdict compares S with T. TVM is a second opinion on each model:

* S' against S (and T' against T) measures each model's own numeric noise. Tolerances are
  widened to twice the largest noise that is still plausible noise, and the report says so.
* A model whose TVM run disagrees with its native run beyond ``RUNTIME_FAULT_FACTOR`` times the
  tolerance has a runtime fault (a TVM frontend or kernel bug, or a native kernel bug): a
  ``runtime`` finding, never blamed on the converter.
* When S and T disagree, the odd one out is found by vote: if T' agrees with S (and S'), the
  target *file* is faithful and the target's native runtime is what deviates (the pipeline
  confirms it by replaying the divergent layer alone). The source in its own framework is the
  reference: when S' agrees with T, that is recorded on the divergence, never turned into blame of
  the source framework's kernels.
* A TVM route that passes through the converter that made the target (a Keras source reaches
  Relax only through tf2onnx or TFLiteConverter) is not independent: such a route is tried last,
  and when it is the only one, S' is left out of the noise estimate and the vote.

Runners are passed in; this module never imports a framework.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from convlint.analyzers import defaults as D
from convlint.analyzers import extras
from convlint.analyzers import rules as R
from convlint.analyzers.differential import routes
from convlint.analyzers.differential.compare import Tolerance, compare_runs
from convlint.analyzers.differential.inputs import (
    InputPlan,
    load_inputs,
    plan_inputs,
    random_inputs,
)
from convlint.analyzers.differential.runs import RunResults
from convlint.analyzers.errors import ConvlintError, StepFailed
from convlint.analyzers.report.findings import ConversionReport, Finding, Location, ModelRef

RUNTIME_FAULT_FACTOR = 10.0
NOISE_FACTOR = 2.0


@dataclass
class DiffOptions:
    num_inputs: int = D.NUM_INPUTS
    seed: int = D.SEED
    atol: float = D.ATOL
    rtol: float = D.RTOL
    inputs_path: str | None = None
    scale: float = 1.0
    mean: list | None = None
    std: list | None = None
    input_shapes: dict = field(default_factory=dict)
    use_tvm: bool = True
    # source input name -> (low, high) of random float inputs: an int8 target's calibrated range
    input_ranges: dict = field(default_factory=dict)


@dataclass
class ModelRuns:
    """What one model produced: per-sample output lists, natively and through TVM."""

    role: str
    native: list | None = None
    tvm: list | None = None
    tvm_route: str | None = None
    tvm_error: StepFailed | None = None
    tvm_shared: tuple = ()  # converters the route shares with the other model's producer
    output_names: list = field(default_factory=list)
    layers: list = field(default_factory=list)  # per-layer outputs of the first samples
    seconds: dict = field(default_factory=dict)


def _finding(rule: R.Rule, message: str, **kw) -> Finding:
    return Finding(rule=rule.code, severity=kw.pop("severity", rule.severity), stage=rule.stage,
                   message=message, **kw)


def _native_leg(runner, role: str, samples: list, shapes: dict, progress: Callable,
                capture: int = 0) -> ModelRuns:
    """Run ``runner`` natively on ``samples``. The first ``capture`` samples run with per-layer
    capture (``Runner.run_capturing``): the localization's capture reuses these runs instead of
    running the model again.

    A leg already run by this runner on the same inputs (the source, checked again against
    each re-conversion and repair in one pipeline) is taken from the runner's memo, not run
    again: the runtimes are deterministic, and the module is the same loaded file."""
    runs = ModelRuns(role)
    runs.output_names = [s.name for s in runner.output_specs()]
    memo = _leg_memo(runner)
    key = ("native", _inputs_key(samples, shapes))
    t0 = time.perf_counter()
    hit = memo.get(key)
    if hit is not None and len(hit[1]) >= capture:
        runs.native, runs.layers = hit
    else:
        progress(f"{role}: running {len(samples)} inputs on {runner.backend}")
        native, layers = [], []
        for i, x in enumerate(samples):
            if i < capture:
                out, inter = runner.run_capturing(x)
                layers.append(inter)
            else:
                out = runner.run(x)
            native.append(list(out.values()))
        runs.native, runs.layers = native, layers
        memo[key] = (native, layers)
    runs.seconds["native"] = time.perf_counter() - t0
    return runs


def _tvm_leg(runner, role: str, samples: list, shapes: dict, progress: Callable) -> tuple:
    """``(outputs per sample or None, route, StepFailed or None, seconds)`` of ``runner``
    compiled through TVM (from the runner's memo when it ran these inputs already)."""
    t0 = time.perf_counter()
    memo = _leg_memo(runner)
    key = ("tvm", _inputs_key(samples, shapes), runner.tvm_avoid)
    if key not in memo:
        outs, route, error = None, None, None
        progress(f"{role}: compiling through TVM")
        try:
            tvm = runner.to_tvm(shapes)
            route = tvm.route
            progress(f"{role}: running {len(samples)} inputs on TVM")
            outs = [tvm.run(x) for x in samples]
        except StepFailed as e:
            error = e
        memo[key] = (outs, route, error)
    return (*memo[key], time.perf_counter() - t0)


def _tvm_legs(legs: list, progress: Callable, cancel) -> dict:
    """Both models' TVM legs, one after the other (role -> ``_tvm_leg``'s tuple); meant for a
    background thread beside the native runs. ``cancel`` (a threading.Event) stops it between
    models when the check ended early."""
    out = {}
    for runner, role, samples, shapes in legs:
        if cancel.is_set():
            break
        out[role] = _tvm_leg(runner, role, samples, shapes, progress)
    return out


def _leg_memo(runner) -> dict:
    """The runner's memo of legs it ran: ``{(leg, inputs key, ...): result}``."""
    memo = getattr(runner, "_leg_memo", None)
    if memo is None:
        memo = {}
        try:
            runner._leg_memo = memo
        except AttributeError:  # a runner that takes no attributes: no memo
            pass
    return memo


def _inputs_key(samples: list, shapes: dict) -> str:
    """A digest of the samples' names, shapes, dtypes and bytes (and the TVM input shapes)."""
    import hashlib

    import numpy as np

    h = hashlib.sha1(repr(sorted(shapes.items())).encode())
    for x in samples:
        for name, a in x.items():
            a = np.ascontiguousarray(a)
            h.update(f"{name}|{a.shape}|{a.dtype}".encode())
            h.update(a.data)
    return h.hexdigest()


def _memory_note(message: str) -> str:
    """When a run failed to allocate under convlint's memory ceiling, say so and how to raise it."""
    import re

    from convlint.analyzers.subproc import memory_ceiling_mb

    mb = memory_ceiling_mb()
    if not mb or not re.search(r"alloc|MemoryError|out of memory", message, re.I):
        return ""
    return (f" (the model needs more memory than convlint's ceiling of {mb} MB; "
            "CONVLINT_MEMORY_LIMIT_MB raises it, 0 lifts it)")


def check_pair(source, target, opts: DiffOptions, progress: Callable | None = None,
               record: RunResults | None = None, capture: int = 0) -> ConversionReport:
    """Run the differential check of ``target`` (converted) against ``source`` (original).

    ``source`` and ``target`` are Runners. Raises ConvlintError for unusable inputs; model
    crashes come back as a report with verdict ``crash``. ``record``, when given, receives the
    inputs and every run by name (``runs.RUN_NAMES``); with ``capture``, also the per-layer
    outputs of the first ``capture`` samples of each native run (``record.layers``), which the
    localization's capture then reuses.
    """
    progress = progress or (lambda msg: None)
    t_start = time.perf_counter()
    src_ref = ModelRef(source.path, source.format)
    tgt_ref = ModelRef(target.path, target.format)
    findings: list[Finding] = []

    def crash(role: str, e: StepFailed) -> ConversionReport:
        model = source if role == "source" else target
        where = f" at {e.op}" if e.op else ""
        node: dict[str, Any] = {f"{role}_node": e.op}  # source_node or target_node
        f = _finding(R.MODEL_CRASH, f"the {role} model failed to {e.step} in {e.backend}{where}: "
                     f"{e.message}{_memory_note(e.message)}",
                     location=Location(**node) if e.op else Location(),
                     evidence={"model": role, "step": e.step, "backend": e.backend, "op": e.op,
                               "path": model.path})
        return ConversionReport(src_ref, tgt_ref, {"count": 0, "origin": origin}, "crash",
                                _null_metrics(), tuple(findings + [f]))

    origin = "file" if opts.inputs_path else "random"
    # load both; unreadable files raise ModelLoadError (exit 2), runtime refusals are crashes
    use_tvm = opts.use_tvm
    why = extras.tvm_problem() if use_tvm else None
    if why:  # the cross-check is optional: say so once, go on
        use_tvm = False
        findings.append(_finding(
            R.TVM_UNAVAILABLE, f"{why}, so the TVM cross-check was skipped (as with --no-tvm); "
            "install it with: pip install 'convlint[tvm]'",
            evidence={"model": None, "step": "import", "op": None}))
    for role, model in (("source", source), ("target", target)):
        if model.format == "torchscript":
            findings.append(
                _finding(
                    R.TORCHSCRIPT_DEPRECATED,
                    f"the {role} is a TorchScript file: torch.jit is deprecated in favour of "
                    f"torch.export; save the model with "
                    f"torch.export.save(torch.export.export(model, args), 'model.pt2') (convlint "
                    f"then checks it with its graph, layer by layer, and through TVM's own torch "
                    f"importer)",
                    evidence={"model": role, "path": model.path},
                )
            )
        progress(f"{role}: loading {model.path}")
        try:
            model.load()
        except StepFailed as e:
            return crash(role, e)
    for role, model in (("source", source), ("target", target)):
        for rf in getattr(model, "runtime_faults", []):
            where = f" at {rf['op']}" if rf.get("op") else ""
            findings.append(
                _finding(
                    R.RUNTIME_KERNEL_REFUSED,
                    f"the {role} model fails to {rf['step']} in {rf['backend']}{where}: "
                    f"{rf['message']}; {rf['fallback']} run it, and the check below used them: a "
                    f"runtime fault, not the converter's",
                    location=Location(**{f"{role}_node": rf.get("op")}),
                    evidence={"model": role, **rf},
                )
            )
    producer = target_producer(target)
    # this pair's, not the last
    source.tvm_avoid = frozenset({producer}) if producer else frozenset()
    try:
        plan = plan_inputs(source.input_specs(), target.input_specs(), opts.input_shapes)
    except ConvlintError as e:
        if e.rule != R.IO_MISMATCH.code:
            raise
        f = _finding(R.IO_MISMATCH, e.message)
        return ConversionReport(src_ref, tgt_ref, {"count": 0, "origin": origin}, "divergent",
                                _null_metrics(), (f,))
    for s, (t, perm) in plan.transposed.items():
        findings.append(
            _finding(
                R.LAYOUT_TRANSPOSED,
                f"input {s!r} is {_layout(perm)[0]} in the source and {_layout(perm)[1]} in the "
                f"target; inputs were transposed with {list(perm)} for the target",
                evidence={"source_input": s, "target_input": t, "permutation": list(perm)},
            )
        )
    if opts.inputs_path:
        samples = load_inputs(opts.inputs_path, plan, scale=opts.scale, mean=opts.mean,
                              std=opts.std, limit=opts.num_inputs)
    else:
        samples = random_inputs(plan, opts.num_inputs, opts.seed, opts.input_ranges)
    tsamples = [plan.for_target(x) for x in samples]

    legs = [(source, "source", samples, plan.source_shapes),
            (target, "target", tsamples, plan.target_shapes)]
    runs = {}
    # the TVM legs (import, compile or load from the cache, run) go on in a background thread
    # while the native runtimes run: TVM's kernels and the native ones release the GIL
    import threading
    from concurrent.futures import ThreadPoolExecutor

    cancel = threading.Event()
    # not beside a runner whose TVM import runs its own framework's exporter (torch.export and
    # torch.onnx.export set process-wide modes that break the native torch runs meanwhile)
    parallel = use_tvm and all(getattr(m, "tvm_in_thread", True) for m in (source, target))
    with ThreadPoolExecutor(1, thread_name_prefix="convlint-tvm") as pool:
        tvm_future = pool.submit(_tvm_legs, legs, progress, cancel) if parallel else None
        for model, role, xs, shapes in legs:
            try:
                runs[role] = _native_leg(model, role, xs, shapes, progress,
                                         capture if record is not None else 0)
            except StepFailed as e:
                cancel.set()
                return crash(role, e)
        if tvm_future is not None:
            tvm_runs = tvm_future.result()
        else:
            tvm_runs = _tvm_legs(legs, progress, cancel) if use_tvm else {}
    for role, (outs, route, error, secs) in tvm_runs.items():
        r = runs[role]
        r.tvm, r.tvm_route, r.tvm_error = outs, route, error
        r.seconds["tvm"] = secs
    S, T = runs["source"], runs["target"]
    if record is not None:
        _record(record, samples, tsamples, S, T)
    S.tvm_shared = tuple(sorted(routes.shared(S.tvm_route, producer)))
    tol = Tolerance(opts.atol, opts.rtol)
    fault_tol = Tolerance(opts.atol * RUNTIME_FAULT_FACTOR, opts.rtol * RUNTIME_FAULT_FACTOR)

    # 1. each model's own noise: native against TVM
    noise, tvm_ok, self_cmp = 0.0, {}, {}
    for r, model in ((S, source), (T, target)):
        if r.tvm_error is not None:
            findings.append(_finding(
                R.TVM_UNAVAILABLE,
                f"TVM could not {r.tvm_error.step} the {r.role} model"
                + (f" ({r.tvm_error.op})" if r.tvm_error.op else "")
                + f": {r.tvm_error.message}. The TVM cross-check of the {r.role} was skipped",
                evidence={"model": r.role, "step": r.tvm_error.step, "op": r.tvm_error.op}))
            continue
        if r.tvm is None:
            continue
        if model.format in ("keras", "savedmodel", "torchscript"):
            msg = f"the {r.role} ({model.format}) reached TVM through {r.tvm_route}"
            if r.tvm_shared:
                msg += (f"; {', '.join(r.tvm_shared)} also made the target, so this run is no "
                        "independent evidence and was left out of the noise estimate and the vote")
            findings.append(_finding(
                R.TVM_PATH, msg, evidence={"model": r.role, "route": r.tvm_route,
                                           "chain": routes.chain(r.tvm_route),
                                           "shared_with_target": list(r.tvm_shared)}))
        c = compare_runs(r.native, r.tvm, fault_tol, r.output_names)
        self_cmp[r.role] = c
        if r.tvm_shared:
            continue
        if not c.passed:
            tvm_ok[r.role] = False
            continue
        tvm_ok[r.role] = True
        noise = max(noise, c.max_abs)
    eff = Tolerance(max(tol.atol, NOISE_FACTOR * noise), tol.rtol)
    if eff.atol > tol.atol:
        findings.append(
            _finding(
                R.NOISE_TOLERANCE,
                f"atol widened from {tol.atol:g} to {eff.atol:g}: native and TVM runs of the "
                f"same model already differ by up to {noise:.3g}",
                evidence={"atol": tol.atol, "atol_effective": eff.atol, "noise_max_abs": noise},
            )
        )

    # 2. the verdict: source native against target native
    main = compare_runs(S.native, T.native, eff, S.output_names)
    if main.incomparable:
        findings.append(
            _finding(R.OUTPUT_SHAPE, f"outputs cannot be compared: {main.incomparable}")
        )
        return _report(src_ref, tgt_ref, samples, origin, "divergent", _null_metrics(), findings,
                       S, T, eff, tol, noise, self_cmp, None, t_start)
    tvm_cmp = None
    if S.tvm is not None and T.tvm is not None and not S.tvm_shared:
        tvm_cmp = compare_runs(S.tvm, T.tvm, eff, S.output_names)
    odd = None
    if not main.passed:
        odd = _odd_one_out(S, T, eff)
    for r, model in ((S, source), (T, target)):
        if tvm_ok.get(r.role) is False and odd != r.role:
            c = self_cmp[r.role]  # every role in tvm_ok has its comparison in self_cmp
            detail = c.incomparable or f"max_abs {c.max_abs:.3g}"
            findings.append(_finding(
                R.TVM_MISMATCH,
                f"TVM and {model.backend} disagree on the same {r.role} model ({detail}): a TVM "
                "frontend or kernel fault, not the converter's",
                evidence={"model": r.role, "route": r.tvm_route,
                          "metrics": c.summary()}))
    verdict = "equivalent"
    if any(f.rule == R.RUNTIME_KERNEL_REFUSED.code and f.evidence.get("model") == "target"
           for f in findings):
        verdict = "crash"  # as shipped, the target does not run; the metrics are the fallback's
    if not main.passed:
        verdict = "divergent"
        if odd == "target":
            model = target
            findings.append(_finding(
                R.TVM_MISMATCH, severity="error",
                message=(f"the {odd} model's native runtime ({model.backend}) disagrees with TVM "
                         f"running the same file, and TVM agrees with the other model: the {odd} "
                         f"file is faithful, its runtime's kernels deviate (max_abs "
                         f"{main.max_abs:.3g}); this is not the converter's fault"),
                evidence={"model": odd, "metrics": main.metrics()}))
        else:
            msg = (f"the converted model's outputs differ from the source's: max_abs "
                   f"{main.max_abs:.3g}, {main.mismatched} of {main.total} elements beyond "
                   f"atol {eff.atol:g} and rtol {eff.rtol:g}")
            if main.top1_agreement is not None:
                msg += f"; top-1 label agrees on {main.top1_agreement:.0%} of inputs"
            ev = {
                "mismatched": main.mismatched,
                "total": main.total,
                "worst_output": main.worst_output,
            }
            if tvm_cmp is not None and not tvm_cmp.incomparable:
                ev["confirmed_by_tvm"] = not tvm_cmp.passed
            if odd == "source":
                # the source in its own framework is the reference: TVM agreeing with the target
                # is recorded, and only a replay of the divergent layer may say more
                ev["vote"] = {"odd_one_out": "source", "source_tvm_route": S.tvm_route}
                msg += ("; TVM running the source agrees with the target, which the replay of "
                        "the divergent layer weighs")
            findings.append(_finding(R.OUTPUTS_DIVERGE, msg, evidence=ev))
    return _report(src_ref, tgt_ref, samples, origin, verdict, main.metrics(), findings, S, T,
                   eff, tol, noise, self_cmp, tvm_cmp, t_start)


def _record(record: RunResults, samples: list, tsamples: list, S: ModelRuns, T: ModelRuns) -> None:
    record.inputs = {"source": samples, "target": tsamples}
    for r in (S, T):
        for kind in ("native", "tvm"):
            if getattr(r, kind) is not None:
                record.add(f"{r.role}/{kind}", getattr(r, kind), r.output_names)
        record.meta[f"{r.role}/tvm_route"] = r.tvm_route
        if r.layers:
            record.layers[r.role] = r.layers


def target_producer(target) -> str | None:
    """The converter that made the target, from its metadata (None when unknown)."""
    from convlint.analyzers.localize.tool import identify

    try:
        return identify(target.metadata()).get("converter")
    except Exception:  # noqa: BLE001 - metadata is a hint; a model without it has no producer
        return None


def _odd_one_out(S: ModelRuns, T: ModelRuns, tol: Tolerance) -> str | None:
    """Which native runtime is the odd one out when S and T disagree, by vote with TVM.
    A source TVM run that shares the target's converter does not vote."""
    if S.tvm_shared:
        S = ModelRuns(S.role, S.native, None)

    def agree(a, b):
        if a is None or b is None:
            return None
        c = compare_runs(a, b, tol)
        return c.passed

    if T.tvm is not None and agree(S.native, T.tvm) and agree(T.native, T.tvm) is False \
            and agree(S.native, S.tvm) is not False:
        return "target"
    if S.tvm is not None and agree(S.tvm, T.native) and agree(S.native, S.tvm) is False \
            and agree(T.native, T.tvm) is not False:
        return "source"
    return None


def _layout(perm) -> tuple:
    return ("NHWC", "NCHW") if tuple(perm) == (0, 3, 1, 2) else ("NCHW", "NHWC")


def _null_metrics() -> dict:
    return {"max_abs": None, "mean_abs": None, "cosine_min": None, "top1_agreement": None}


def _report(src_ref, tgt_ref, samples, origin, verdict, metrics, findings, S, T, eff, tol, noise,
            self_cmp, tvm_cmp, t_start) -> ConversionReport:
    def model_info(r: ModelRuns) -> dict:
        c = self_cmp.get(r.role)
        return {"tvm_route": r.tvm_route, "tvm_chain": routes.chain(r.tvm_route),
                "tvm_independent": not r.tvm_shared,
                "tvm_error": r.tvm_error.message if r.tvm_error else None,
                "native_vs_tvm": c.summary() if c is not None else None,
                "seconds": {k: round(v, 3) for k, v in r.seconds.items()}}

    extra = {
        "tolerance": {
            "atol": tol.atol,
            "rtol": tol.rtol,
            "atol_effective": eff.atol,
            "noise_max_abs": noise,
        },
        "runs": {"source": model_info(S), "target": model_info(T)},
        "metrics_tvm": tvm_cmp.metrics()
        if tvm_cmp is not None and not tvm_cmp.incomparable
        else None,
        "seconds": round(time.perf_counter() - t_start, 3),
    }
    return ConversionReport(src_ref, tgt_ref, {"count": len(samples), "origin": origin}, verdict,
                            metrics, tuple(findings), extra)


__all__ = ["DiffOptions", "InputPlan", "check_pair"]
