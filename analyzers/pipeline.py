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
from convlint.analyzers import rules as R
from convlint.analyzers.differential.check import DiffOptions, check_pair
from convlint.analyzers.differential.inputs import plan_inputs, random_inputs
from convlint.analyzers.errors import StepFailed
from convlint.analyzers.localize import stages
from convlint.analyzers.report.findings import ConversionReport, Finding, Repair

LOCALIZE_SAMPLES = 2


@dataclass
class PipelineOptions:
    diff: DiffOptions
    localize: bool = True
    repair: bool = False
    output: str | None = None
    unsafe_load: bool = False


def capture(source, target, opts: DiffOptions, n: int = LOCALIZE_SAMPLES) -> stages.Capture:
    """Record both layer tables and per-layer outputs on ``n`` shared inputs."""
    plan = plan_inputs(source.input_specs(), target.input_specs(), opts.input_shapes)
    xs = random_inputs(plan, n, opts.seed)
    txs = [plan.for_target(x) for x in xs]
    try:  # the inputs go in too: stage 3 reads input sizes off them
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


LOCALIZED = (R.OUTPUTS_DIVERGE.code, R.OUTPUT_SHAPE.code)


def _needs_localization(report: ConversionReport) -> bool:
    """A divergence (values or shapes), or a vote that blames a runtime: the replay of the
    divergent layer must confirm a runtime's blame before it stands."""
    return report.verdict == "divergent" and any(
        f.rule in LOCALIZED or (f.rule == R.TVM_MISMATCH.code and f.severity == "error")
        for f in report.findings)


def check(source, target, popts: PipelineOptions, progress: Callable | None = None) -> ConversionReport:
    progress = progress or (lambda m: None)
    report = check_pair(source, target, popts.diff, progress)
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
    cap = capture(source, target, popts.diff)
    loc = stages.run(cap, layer_rtol=layer_rtol)
    progress("localizing: replaying the first divergent layer alone")
    try:
        orc = oracle.run(target, cap, loc, layer_rtol, source)
    except Exception as e:  # noqa: BLE001 - the oracle adds evidence; it never fails the check
        import logging

        logging.getLogger(__name__).debug("layer replay failed", exc_info=True)
        orc = oracle.OracleResult(evidence={"replay": None, "error": f"{type(e).__name__}: {e}"[:300]})
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
    timing = {"localize": round(t1 - t0, 3), "stage1_and_repair": round(time.perf_counter() - t1, 3)}
    evidence = dict(loc.evidence(), **orc.evidence, seconds=timing, culprit=culprit(findings))
    extra = dict(report.extra, localization=evidence)
    return replace(report, findings=tuple(findings), extra=extra)


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

    if any(f.rule == R.CONVERTER_QUANTIZED.code and f.repair and f.repair.verified for f in findings):
        return findings  # re-conversion already repaired the model
    plan = plan_repairs(findings, loc.matches, target.format)
    if not plan.steps:
        return findings
    out = repaired_path(target.path, popts.output)
    progress(f"repair: patching {len(plan.patches)} tensors and {len(plan.edits)} attributes into {out}")
    done = apply.apply(target.format, target.path, plan, out)
    r = _verify(source, out, popts)
    ok = r.verdict == "equivalent"
    result = []
    for f in findings:
        step = plan.steps.get(id(f))
        if step is not None:
            f = f.with_(repair=Repair(step.kind, step.description, out, ok, _after(r)) if step.key in done else Repair(
                "none", "this target cannot be patched in place (storage or format); re-convert instead",
                None, False, None))
        result.append(f)
    return result


def check_paths(source_path: str, target_path: str, popts: PipelineOptions,
                progress: Callable | None = None) -> ConversionReport:
    """The entry point the CLI and the server call."""
    from convlint.analyzers.models import open_model

    src = open_model(source_path, unsafe_load=popts.unsafe_load, input_shapes=popts.diff.input_shapes)
    tgt = open_model(target_path, unsafe_load=popts.unsafe_load, input_shapes=popts.diff.input_shapes)
    with src, tgt:
        return check(src, tgt, popts, progress)



def diff_paths(source_path: str, target_path: str, opts: DiffOptions, *,
               unsafe_load: bool = False, progress: Callable | None = None) -> ConversionReport:
    """The plain differential check of two files, without localization."""
    return check_paths(source_path, target_path, PipelineOptions(opts, localize=False, unsafe_load=unsafe_load),
                       progress)

def check_paths_or_error(source_path: str, target_path: str, popts: PipelineOptions,
                         progress: Callable | None = None) -> ConversionReport:
    """``check_paths``, but a pair that cannot be analysed (unreadable, unsupported, refused)
    becomes an ``error`` report with the one finding that says why, instead of an exception:
    what batch callers (``convlint check``, ``convlint trace``) need to go on with the rest."""
    from convlint.analyzers.errors import ConvlintError

    try:
        return check_paths(source_path, target_path, popts, progress)
    except ConvlintError as e:
        rule = e.rule if e.rule in R.RULES else R.UNREADABLE_MODEL.code
        f = Finding(rule, "error", "input", e.message + (f". {e.hint}" if e.hint else ""))
        return ConversionReport.unanalysed(source_path, target_path, "error", f)
