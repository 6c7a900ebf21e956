"""The conversion check end to end: differential check, then (when divergent) staged
localization, then (when asked) repair, each repair verified by checking again.

This is the one place that drives runners for localization: it captures an artifact once and
hands it to the pure stages in ``convlint.analyzers.localize``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from convlint.analyzers import crash, oracle
from convlint.analyzers import defaults as D
from convlint.analyzers import rules as R
from convlint.analyzers.differential.check import DiffOptions, check_pair
from convlint.analyzers.differential.inputs import plan_inputs, random_inputs
from convlint.analyzers.differential.runs import RunResults
from convlint.analyzers.errors import StepFailed
from convlint.analyzers.localize import quantization as Q
from convlint.analyzers.localize import stages
from convlint.analyzers.report.findings import ConversionReport, Finding, Location, Repair

LOCALIZE_SAMPLES = 2


@dataclass
class PipelineOptions:
    diff: DiffOptions
    localize: bool = True
    repair: bool = False
    output: str | None = None
    unsafe_load: bool = False
    calibration: str | None = None  # calibration data for re-quantizing a full-integer target
    # write the check's runs and the capture here (runs.save_capture)
    save_capture: str | None = None


def capture(source, target, opts: DiffOptions, n: int = LOCALIZE_SAMPLES,
            runs: RunResults | None = None) -> stages.Capture:
    """Record both layer tables and per-layer outputs on ``n`` shared inputs. When the check
    captured them during its own runs on the same inputs (``runs.layers``), they are reused and
    neither model runs again."""
    plan = plan_inputs(source.input_specs(), target.input_specs(), opts.input_shapes)
    xs = random_inputs(plan, n, opts.seed, opts.input_ranges)
    txs = [plan.for_target(x) for x in xs]
    reused = _reused_layers(runs, xs, txs)
    try:  # the inputs go in too: stage 3 reads input sizes off them
        if reused is not None:
            src_runs = [{**x, **lx} for x, lx in zip(xs, reused[0], strict=True)]
            tgt_runs = [{**tx, **lt} for tx, lt in zip(txs, reused[1], strict=True)]
        else:
            src_runs = [{**x, **source.intermediates(x)} for x in xs]
            tgt_runs = [{**tx, **target.intermediates(tx)} for tx in txs]
    except StepFailed:
        src_runs, tgt_runs = [], []
    from convlint.analyzers.models.describe import LAYOUT

    perms = [perm for _, perm in plan.pairs.values() if perm is not None]
    return stages.Capture(source.format, target.format, source.layers(), target.layers(),
                          src_runs, tgt_runs, target.metadata(), list(plan.source_shapes),
                          perms[0] if perms else None,
                          (LAYOUT.get(source.format, "NCHW"), LAYOUT.get(target.format, "NCHW")))


def _reused_layers(runs: RunResults | None, xs: list, txs: list) -> tuple | None:
    """The check's per-layer outputs for inputs ``xs`` (source) and ``txs`` (target), when it
    captured them on exactly these inputs; else None."""
    import numpy as np

    if runs is None or not runs.layers:
        return None
    n = len(xs)
    src, tgt = runs.layers.get("source") or [], runs.layers.get("target") or []
    if len(src) < n or len(tgt) < n:
        return None
    for mine, theirs in ((xs, runs.inputs.get("source") or []),
                         (txs, runs.inputs.get("target") or [])):
        if len(theirs) < n or any(
                a.keys() != b.keys() or any(not np.array_equal(a[k], b[k]) for k in a)
                for a, b in zip(mine, theirs[:n], strict=True)):
            return None
    return src[:n], tgt[:n]


def _expects_localization(target, qparams: dict) -> bool:
    """Whether the check should capture per-layer outputs during its own runs: the target
    computes with integer activations or stores its weights in reduced precision, so it
    differs from a float source beyond float noise and localization nearly always follows.
    Otherwise (a float target, most often equivalent) the capture is made only after a
    divergent verdict, and a clean pair pays nothing for it."""
    if qparams:
        return True
    try:
        ev = target.metadata().get("conversion_evidence") or {}
    except Exception:  # noqa: BLE001 - metadata is a hint
        return False
    return bool(ev.get("quantized_storage") or ev.get("float16_storage"))


LOCALIZED = (R.OUTPUTS_DIVERGE.code, R.OUTPUT_SHAPE.code)


def _needs_localization(report: ConversionReport) -> bool:
    """A divergence (values or shapes), or a vote that blames a runtime: the replay of the
    divergent layer must confirm a runtime's blame before it stands."""
    return report.verdict == "divergent" and any(
        f.rule in LOCALIZED or (f.rule == R.TVM_MISMATCH.code and f.severity == "error")
        for f in report.findings)


def check(
    source, target, popts: PipelineOptions, progress: Callable | None = None
) -> ConversionReport:
    progress = progress or (lambda m: None)
    qparams = _activation_quantization(target)
    narrow: dict = {}
    if qparams and not popts.diff.inputs_path:  # judged inside the range it was calibrated for
        plan = plan_inputs(source.input_specs(), target.input_specs(), popts.diff.input_shapes)
        ranges, narrow = Q.calibrated_ranges(plan.pairs, qparams)
        popts = replace(popts, diff=replace(popts.diff, input_ranges=ranges))
    # the check's own runs are recorded, and with a capture count its first native runs keep
    # every layer's output: the localization's capture reuses them (capture(..., runs=runs))
    layer_runs = LOCALIZE_SAMPLES if popts.localize and (
        popts.save_capture or _expects_localization(target, qparams)) else 0
    runs = (RunResults(meta={"layer_rtol": max(popts.diff.rtol, 1e-6)})
            if popts.save_capture or layer_runs else None)
    report = check_pair(source, target, popts.diff, progress, record=runs, capture=layer_runs)
    if popts.save_capture and runs is not None and report.verdict != "crash" and not (
            popts.localize and _needs_localization(report)):
        cap = capture(source, target, popts.diff, runs=runs)  # a clean pair's too
        _save_capture(popts, cap, runs, progress)
    if (qparams and popts.localize and report.verdict == "divergent"
            and any(f.rule == R.OUTPUTS_DIVERGE.code for f in report.findings)):
        return _check_quantized(source, target, report, qparams, narrow, popts, progress, runs)
    if popts.localize and any(f.rule == R.RUNTIME_KERNEL_REFUSED.code for f in report.findings):
        findings = crash.name_runtime_faults(source, target, list(report.findings), popts,
                                             progress)
        report = replace(report, findings=tuple(findings), extra=dict(
            report.extra, localization=dict(report.extra.get("localization") or {},
                                            culprit=culprit(findings))))
    if report.verdict == "crash" and popts.localize:
        return crash.localize(source, target, report, popts, progress)
    if not popts.localize or not _needs_localization(report):
        return report
    t0 = time.perf_counter()
    progress("localizing: aligning the graphs and comparing layers")
    # the per-layer threshold follows the user's rtol (1e-6 at the tightest: float noise)
    layer_rtol = max(popts.diff.rtol, 1e-6)
    cap = capture(source, target, popts.diff, runs=runs)
    if popts.save_capture and runs is not None:
        _save_capture(popts, cap, runs, progress)
    loc = stages.run(cap, layer_rtol=layer_rtol)
    progress("localizing: replaying the first divergent layer alone")
    try:
        orc = oracle.run(target, cap, loc, layer_rtol, source)
    except Exception as e:  # noqa: BLE001 - the oracle adds evidence; it never fails the check
        import logging

        logging.getLogger(__name__).debug("layer replay failed", exc_info=True)
        orc = oracle.OracleResult(
            evidence={"replay": None, "error": f"{type(e).__name__}: {e}"[:300]}
        )
    refuted = {id(f) for f in orc.refuted}
    findings = _weigh_vote(list(report.findings), orc) + [
        f.with_(severity="info", message=f.message + " (refuted: the layer replayed without it "
                "still differs from the source)") if id(f) in refuted else f
        for f in loc.findings] + orc.findings
    t1 = time.perf_counter()
    from convlint.analyzers.repair import reconvert

    findings += reconvert.explain_quantization(source, target, loc, popts, progress, _verify)
    if popts.repair:
        findings = _repair(source, target, loc, findings, popts, progress)
        if not any(f.repair and f.repair.verified for f in findings):
            findings = reconvert.search(source, target, findings, popts, progress, _verify)
    timing = {
        "localize": round(t1 - t0, 3),
        "stage1_and_repair": round(time.perf_counter() - t1, 3),
    }
    evidence = dict(loc.evidence(), **orc.evidence, seconds=timing, culprit=culprit(findings))
    extra = dict(report.extra, localization=evidence)
    return replace(report, findings=tuple(findings), extra=extra)


def _save_capture(popts: PipelineOptions, cap: stages.Capture, runs: RunResults, progress) -> None:
    from convlint.analyzers.differential.runs import save_capture

    progress(f"saving the check's runs and the localization capture to {popts.save_capture}")
    save_capture(popts.save_capture, cap, runs)


def localize_saved(path: str, layer_rtol: float | None = None) -> stages.Localization:
    """Localization replayed from ``save_capture``'s file, without the models: the stages over
    the saved capture (the layer replay and repairs need the models and are not run)."""
    from convlint.analyzers.differential.runs import load_capture

    cap, runs = load_capture(path, stages.Capture)
    if layer_rtol is None:
        layer_rtol = (runs.meta.get("layer_rtol") if runs else None) or max(D.RTOL, 1e-6)
    return stages.run(cap, layer_rtol=layer_rtol)


def _activation_quantization(target) -> dict:
    """The target's integer activations (a full-integer model), or {} (float, weight-only)."""
    try:
        return target.activation_quantization()
    except StepFailed:  # a target that cannot load: the check reports it as a crash
        return {}


def _check_quantized(source, target, report: ConversionReport, qparams: dict, narrow: dict,
                     popts: PipelineOptions, progress: Callable,
                     runs: RunResults | None = None) -> ConversionReport:
    """A full-integer target always differs from its float source: judge each aligned layer by
    its own quantization step (localize/quantization.py). Within int8 noise the pair is
    equivalent, with the budget in an info finding; otherwise the layers at fault are named.
    The weights being int8 is the quantization the user asked for, not a fault (CL201 is info),
    and the float first-divergent layer (CL110) gives way to the layers beyond their step."""
    progress("int8 target: measuring each layer's error against its quantization step")
    cap = capture(source, target, popts.diff, runs=runs)
    if popts.save_capture and runs is not None:
        _save_capture(popts, cap, runs, progress)
    loc = stages.run(cap, layer_rtol=max(popts.diff.rtol, 1e-6))
    table = Q.layer_table(cap.source_layers, cap.source_runs, cap.target_runs, cap.source_inputs,
                          loc.alignment.activations, qparams, cap.layouts[0])
    j = Q.judge(table, report.metrics, _output_layers(cap))
    evidence = {"quantization": j.to_dict(), "calibrated_inputs_narrow":
                {k: list(v) for k, v in narrow.items()}}
    localization = dict(loc.evidence(), quantization=evidence["quantization"])
    if j.noise:
        f = Finding(
            R.INT8_NOISE.code,
            "info",
            "parameters",
            f"within int8 noise: every aligned layer adds at most "
            f"{max((q.added for q in table), default=0.0):.3g} relative error "
            f"(at most {max((q.added_steps for q in table), default=0.0):.2g} of its "
            f"step; uniform rounding is {Q.IDEAL_STEPS:.2f}), and {_budget_text(j, report)}",
            evidence=evidence,
        )
        kept = [x for x in report.findings if x.rule != R.OUTPUTS_DIVERGE.code]
        return replace(report, verdict="equivalent", findings=(*kept, f),
                       extra=dict(report.extra, localization=localization))
    faults = [_int8_fault(q, narrow) for q in j.faults] or [
        Finding(R.INT8_FAULT.code, "error", "parameters",
                f"the outputs exceed the int8 noise budget {j.budget or 0.0:.3g} (max_abs "
                f"{report.metrics.get('max_abs') or 0.0:.3g}, top-1 agreement "
                f"{report.metrics.get('top1_agreement')}) though no aligned layer adds more than "
                f"{Q.FAULT_ADDED:g} relative error on its own", evidence=evidence)]
    if popts.repair:
        faults, localization["requantize"] = _requantize(source, target, faults, report, popts,
                                                         progress)
    rest = [x.with_(severity="info") if x.rule == R.WEIGHTS_QUANTIZED.code else x
            for x in loc.findings if x.rule != R.FIRST_DIVERGENT.code]
    findings = [*report.findings, *faults, *rest]
    localization["culprit"] = culprit(findings)
    return replace(report, findings=tuple(findings),
                   extra=dict(report.extra, localization=localization))


def _requantize(source, target, faults: list, report: ConversionReport, popts: PipelineOptions,
                progress: Callable) -> tuple[list, dict | None]:
    """The int8 faults with their repair: a re-quantization within int8 noise (repair/
    requantize.py), or why none was made."""
    from convlint.analyzers.repair import requantize

    if not requantize.candidates_possible(source, target):
        why = (f"a {target.format} target made from a {source.format} source cannot be "
               "re-quantized here (TFLite from Keras or a SavedModel, QDQ ONNX from ONNX can)")
        return [f.with_(repair=Repair("none", why)) for f in faults], None
    if not popts.calibration:
        names = ", ".join(f.layer for f in faults if f.layer) or "the layers named"
        why = ("re-quantizing needs the calibration data: pass --calibration DATA (.npz, .npy or "
               f"a folder of images) and --repair re-quantizes, keeping {names} in float if "
               "calibration alone does not cure it")
        return [f.with_(repair=Repair("none", why)) for f in faults], None
    repair, evidence = requantize.search(source, target, faults, report, popts, progress,
                                         _verify_quantized)
    if repair is None:
        repair = Repair("none", "no re-quantization within int8 noise was found (tried: "
                        + "; ".join(_tried(t) for t in evidence["tried"]) + ")")
    return [f.with_(repair=repair) for f in faults], evidence


def _tried(t: dict) -> str:
    kept = ", ".join(t["keep_in_float"]) or "nothing"
    return f"{kept} in float: " + (t.get("error") or f"{t['verdict']}, max_abs {t['max_abs']:.3g}")


def _verify_quantized(source, path: str, popts: PipelineOptions) -> ConversionReport:
    """The int8 check of a re-quantized candidate: within int8 noise or not."""
    from convlint.analyzers.models import open_model

    with open_model(path, unsafe_load=popts.unsafe_load) as cand:
        return check(source, cand, replace(popts, repair=False))


def _budget_text(j: Q.QuantJudgement, report: ConversionReport) -> str:
    """How the outputs stay within the int8 noise budget: by their max, or by their RMSE."""
    max_abs = report.metrics.get("max_abs") or 0.0
    if max_abs <= (j.budget or 0.0):
        return (f"the outputs differ by {max_abs:.3g}, within the noise budget {j.budget:.3g} "
                f"({Q.NOISE_STEPS:g} steps of the output's quantization)")
    return (f"the outputs stay within the noise budget in RMSE: {j.output_rmse_steps:.3g} steps of "
            f"their quantization (at most {Q.NOISE_RMSE_STEPS:g}); their max_abs {max_abs:.3g} "
            f"passes {Q.NOISE_STEPS:g} steps ({j.budget:.3g}) somewhere among many elements, "
            "where the max of noise grows with their count")


def _output_layers(cap: stages.Capture) -> list:
    """Source layers whose output no other layer reads: the model's outputs."""
    read = {i for x in cap.source_layers for i in x.inputs}
    return [x.name for x in cap.source_layers
            if x.name not in read and not any(o in read for o in x.outputs)]


def _int8_fault(q: Q.LayerQuant, narrow: dict) -> Finding:
    """The error finding for one layer beyond its step, saying which way it lost its values."""
    lo, hi = q.range
    slo, shi = q.source_range
    if shi > hi + q.step or slo < lo - q.step:
        why = (f"the source's values reach [{slo:.3g}, {shi:.3g}], beyond the calibrated range "
               f"[{lo:.3g}, {hi:.3g}], and are clipped: calibration saw narrower data than these "
               "inputs")
        if narrow:
            why += " (the input itself was calibrated on " + ", ".join(
                f"{k} in [{a:.3g}, {b:.3g}]" for k, (a, b) in narrow.items()) + ")"
    else:
        why = (f"its range [{lo:.3g}, {hi:.3g}] makes the step {q.step:.3g}, coarse against "
               "most of its values: an outlier channel widens the per-tensor range until the "
               "others fall below one step")
    return Finding(R.INT8_FAULT.code, "error", "parameters",
                   f"{q.layer} loses far more than int8 noise: it adds {q.added:.3g} relative "
                   f"error to the {q.inherited:.3g} it inherits (RMSE {q.rmse_steps:.3g} steps of "
                   f"{q.step:.3g}; uniform rounding is {Q.IDEAL_STEPS:.2f}); {why}",
                   layer=q.layer, location=Location(source_node=q.layer, target_node=q.target),
                   evidence=q.to_dict())


def _weigh_vote(findings: list, orc) -> list:
    """A vote that blamed the target runtime stands only if the replay does not show the
    converted op computing something else; otherwise it becomes the conversion divergence."""
    if orc.verdict != "conversion":
        return findings
    out = []
    for f in findings:
        if f.rule == R.TVM_MISMATCH.code and f.severity == "error":
            f = Finding(R.OUTPUTS_DIVERGE.code, "error", "graph",
                        "the converted model's outputs differ from the source's; TVM running the "
                        "target file agreed with the source, but replaying the divergent layer "
                        "alone shows the converted op computes something else than the source "
                        f"layer ({f.message})", evidence=dict(f.evidence, vote_overruled=True))
        out.append(f)
    return out


# the stage of a finding that says *why*, most specific first; graph-level symptoms come last
_SYMPTOMS = (R.OUTPUTS_DIVERGE.code, R.OUTPUT_SHAPE.code, R.FIRST_DIVERGENT.code,
             R.MODEL_CRASH.code)


def culprit(findings) -> dict | None:
    """The finding that explains the divergence: ``{"rule", "stage", "layer"}``."""
    errors = [f for f in findings if f.severity == "error"]
    why = next((f for f in errors if f.rule not in _SYMPTOMS), None) or next(
        (f for f in errors if f.rule == R.FIRST_DIVERGENT.code), None)
    return None if why is None else {"rule": why.rule, "stage": why.stage, "layer": why.layer}


def _verify(source, path: str, popts: PipelineOptions) -> ConversionReport:
    from convlint.analyzers.models import open_model

    with open_model(path, unsafe_load=popts.unsafe_load) as repaired:
        return check_pair(source, repaired, popts.diff)


def _after(r: ConversionReport) -> dict:
    return {"max_abs": r.metrics.get("max_abs"), "top1_agreement": r.metrics.get("top1_agreement"),
            "verdict": r.verdict}


def _repair(source, target, loc, findings, popts: PipelineOptions, progress) -> list:
    """Apply the in-place patches repair/plan.py plans for the findings to one new file (through
    the target format's patcher in repair/apply.py), verified once."""
    from convlint.analyzers.repair import apply
    from convlint.analyzers.repair.plan import plan_repairs
    from convlint.analyzers.repair.weights import repaired_path

    if any(
        f.rule == R.CONVERTER_QUANTIZED.code and f.repair and f.repair.verified for f in findings
    ):
        return findings  # re-conversion already repaired the model
    plan = plan_repairs(findings, loc.matches, target.format)
    if not plan.steps:
        return findings
    out = repaired_path(target.path, popts.output)
    progress(
        f"repair: patching {len(plan.patches)} tensors and {len(plan.edits)} attributes into {out}"
    )
    done = apply.apply(target.format, target.path, plan, out)
    r = _verify(source, out, popts)
    ok = r.verdict == "equivalent"
    result = []
    for f in findings:
        step = plan.steps.get(id(f))
        if step is not None:
            f = f.with_(
                repair=Repair(step.kind, step.description, out, ok, _after(r))
                if step.key in done
                else Repair(
                    "none",
                    "this target cannot be patched in place (storage or format); re-convert "
                    "instead",
                    None,
                    False,
                    None,
                )
            )
        result.append(f)
    return result


def check_paths(source_path: str, target_path: str, popts: PipelineOptions,
                progress: Callable | None = None) -> ConversionReport:
    """The entry point the CLI and the server call."""
    from pathlib import Path

    from convlint.analyzers.errors import ConvlintError
    from convlint.analyzers.models import open_model

    if popts.calibration and not Path(popts.calibration).exists():
        raise ConvlintError(f"--calibration: {popts.calibration} does not exist")
    src = open_model(
        source_path, unsafe_load=popts.unsafe_load, input_shapes=popts.diff.input_shapes
    )
    tgt = open_model(
        target_path, unsafe_load=popts.unsafe_load, input_shapes=popts.diff.input_shapes
    )
    with src, tgt:
        return check(src, tgt, popts, progress)



def diff_paths(source_path: str, target_path: str, opts: DiffOptions, *,
               unsafe_load: bool = False, progress: Callable | None = None) -> ConversionReport:
    """The plain differential check of two files, without localization."""
    return check_paths(
        source_path,
        target_path,
        PipelineOptions(opts, localize=False, unsafe_load=unsafe_load),
        progress,
    )

def check_paths_or_error(source_path: str, target_path: str, popts: PipelineOptions,
                         progress: Callable | None = None) -> ConversionReport:
    """``check_paths``, but a pair that cannot be analysed (unreadable, unsupported, refused)
    becomes an ``error`` report with the one finding that says why, instead of an exception:
    what batch callers (``convlint check``, ``convlint trace``) need to go on with the rest."""
    from convlint.analyzers.errors import ConvlintError

    try:
        return check_paths(source_path, target_path, popts, progress)
    except ConvlintError as e:
        f = Finding.from_error(e, R.UNREADABLE_MODEL.code)
        return ConversionReport.unanalysed(source_path, target_path, "error", f)
