"""``convlint trace``: run a conversion script with instruments, check every conversion it made,
map the findings to the converter call's line, and verify the static rules' rewrites by tracing
the rewritten script again.

In: a script path and ``TraceOptions`` (consent to execute is required). Out: a ``ScriptReport``
of kind ``trace`` whose ``conversions`` hold one conversion report per captured call.

A notebook runs as its code cells joined (``notebook.py``), from a ``.py`` in the cache under the
notebook's name, in the notebook's folder unless ``cwd`` says otherwise (where Jupyter runs it);
its findings are mapped back to cell and line, and ``write_fixed`` writes a new notebook.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from convlint.analyzers import defaults as D
from convlint.analyzers import rules as R
from convlint.analyzers.report.findings import (
    ConversionReport,
    Finding,
    Location,
    ScriptReport,
)
from convlint.analyzers.scripts import notebook
from convlint.analyzers.scripts.check import analyze_source, read_script
from convlint.analyzers.scripts.edits import TextEdit, apply
from convlint.analyzers.subproc import require_consent, run_script_process

if TYPE_CHECKING:  # the pipeline (numpy, the runners) is imported only when a trace checks
    from convlint.analyzers.pipeline import PipelineOptions

BOOT = str(Path(__file__).parent.parent / "sandbox" / "tracer_boot.py")


@dataclass
class TraceOptions:
    pipeline: PipelineOptions  # for the conversion checks
    allow_exec: bool = False
    timeout: float = D.SCRIPT_TIMEOUT
    python: str | None = None  # the interpreter that runs the script (default: convlint's)
    cwd: str | None = None  # where the script runs (default: the current directory)
    args: list = field(default_factory=list)
    verify_fixes: bool = True
    write_fixed: str | None = None  # write the verified rewritten script here
    # the script's address-space limit (None: the machine's memory; 0: none)
    memory_mb: int | None = None
    # let the script write its outputs where it says (default: the cache)
    keep_outputs: bool = False


@dataclass
class Run:
    records: list
    status: int | None  # the script's exit status; None on timeout
    error: dict | None
    stderr: str
    seconds: float


def run_script(script: str, opts: TraceOptions, out_dir: str, code: str | None = None,
               redirect: str | None = None) -> Run:
    """Run the script under the tracer in a subprocess, with a timeout. ``code`` (a rewrite, or a
    notebook's joined cells) runs in the script's name from a ``.py`` in ``out_dir``."""
    cmd = [opts.python or sys.executable, BOOT, "--out", out_dir]
    os.makedirs(out_dir, exist_ok=True)
    if code is not None:
        code_file = os.path.join(out_dir, "code.py")
        Path(code_file).write_text(code, encoding="utf-8")
        cmd += ["--code", code_file]
    if redirect:
        cmd += ["--redirect", redirect]
    cmd += ["--", os.path.abspath(script), *opts.args]
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.setdefault("PYTHONUNBUFFERED", "1")
    t0 = time.perf_counter()
    # limits, no core dumps, and only the tail of the script's output kept (see subproc)
    run = run_script_process(cmd, cwd=opts.cwd or os.getcwd(), env=env, timeout=opts.timeout,
                             memory_mb=opts.memory_mb)
    status = None if run.timed_out else run.returncode
    stderr = run.output
    data, st = {}, {}
    cap = Path(out_dir) / "captures.json"
    if cap.exists():
        data = json.loads(cap.read_text())
    if (Path(out_dir) / "status.json").exists():
        st = json.loads((Path(out_dir) / "status.json").read_text())
    return Run(
        data.get("records", []), status, st.get("error"), stderr[-4000:], time.perf_counter() - t0
    )


def _loc(script: str, rec: dict) -> Location:
    site = rec.get("call_site") or {}
    return Location(
        file=script
        if os.path.abspath(site.get("file") or script) == os.path.abspath(script)
        else site.get("file"),
        line=site.get("line"),
        column=0,
    )


def _check(rec: dict, popts, progress) -> ConversionReport:
    """Check one captured pair. The calibration samples the converter drew (captured) are the
    re-quantization's ``--calibration`` unless the user gave one."""
    from convlint.analyzers.pipeline import check_paths_or_error

    cal = (rec.get("calibration") or {}).get("path")
    if cal and not popts.calibration:
        popts = replace(popts, calibration=cal)
    return check_paths_or_error(rec["source"]["path"], rec["target"]["path"], popts, progress)


def trace_script(script: str, opts: TraceOptions, progress: Callable | None = None) -> ScriptReport:
    progress = progress or (lambda m: None)
    require_consent(opts.allow_exec, f"convlint trace runs {script}, which executes its code")
    nb = notebook.read_notebook(script) if notebook.is_notebook(script) else None
    if nb is not None:
        text = nb.text
        opts = replace(opts, cwd=opts.cwd or os.path.dirname(os.path.abspath(script)))
    else:
        text = read_script(script)
    report = _trace(script, text, nb, opts, progress)
    return nb.map_report(report) if nb is not None else report


def _trace(script: str, text: str, nb: notebook.Notebook | None, opts: TraceOptions,
           progress: Callable) -> ScriptReport:
    static = analyze_source(text, script)
    if static.verdict == "error":
        return replace(static, kind="trace")
    tmp = _capture_dir(script, text, opts)
    progress(f"trace: running {script} (timeout {opts.timeout:g} s)")
    # the script's own writes (the converted models) go to the cache unless the user keeps them
    run = run_script(script, opts, os.path.join(tmp, "run"), code=text if nb is not None else None,
                     redirect=None if opts.keep_outputs else os.path.join(tmp, "outputs"))
    findings = list(static.findings) + _run_findings(script, run, opts)
    checked = []  # (record, its conversion report, or None when it could not be checked)
    for rec in run.records:
        progress(f"trace: checking conversion {rec['index'] + 1}/{len(run.records)} "
                 f"({rec['call']} at line {(rec.get('call_site') or {}).get('line')})")
        rep = _conversion_report(script, rec, opts, progress)
        conv = _static_conversion(static, rec)
        if rep is not None and conv is not None:  # the line of the call that makes the converter
            rep = replace(rep, extra=dict(rep.extra, call_line=conv["line"]))
        checked.append((rec, rep))
        if rep is None:
            findings.append(_record_finding(script, rec))
    if opts.verify_fixes:  # may also update the checked reports (their repair is the rewrite)
        findings = _verify_rewrites(script, text, nb, static, checked, findings, opts, tmp,
                                    progress)
    reports = [rep for _, rep in checked if rep is not None]
    crashed = run.status is None or run.error is not None
    errors = any(f.severity == "error" for f in findings) or any(r.exit_code == 1 for r in reports)
    # a script that converts nothing was not checked: say so in the verdict (CL462, a warning)
    verdict = (
        "crash" if crashed else "faulty" if errors else "issues" if not run.records else "clean"
    )
    extra = {"run": {"status": run.status, "seconds": round(run.seconds, 2),
                     "conversions": [_rec_summary(r) for r in run.records]}}
    return ScriptReport(script, verdict, tuple(findings), "trace", tuple(reports), extra)


def _capture_dir(script: str, text: str, opts: TraceOptions) -> str:
    """The cache folder for this script's captures (replaced on each trace of the same text)."""
    import hashlib
    import shutil

    from convlint.analyzers.cache import cache_dir

    key = hashlib.sha256(
        "\0".join([os.path.abspath(script), text, *opts.args]).encode()
    ).hexdigest()[:12]
    d = cache_dir() / "trace" / f"{Path(script).stem}-{key}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    return str(d)


def _rec_summary(rec: dict) -> dict:
    return {k: rec.get(k) for k in ("index", "converter", "call", "version", "flags", "call_site",
                                    "output", "error", "notes", "calibration")}


def _run_findings(script: str, run: Run, opts: TraceOptions) -> list:
    out = []
    if run.status is None:
        out.append(Finding(R.TRACE_TIMEOUT.code, "error", "runtime",
                           f"the script did not finish within {opts.timeout:g} s; it was stopped "
                           f"({len(run.records)} conversions captured before)",
                           location=Location(file=script, line=1, column=0)))
    elif run.error:
        e = run.error
        out.append(Finding(R.TRACE_SCRIPT_FAILED.code, "error", "runtime",
                           f"the script raised {e['type']}: {e['message'][:500]}",
                           location=Location(file=script, line=e.get("line") or 1, column=0),
                           evidence={"traceback": e.get("traceback", "")[-2000:]}))
    elif run.status not in (0, None):
        out.append(
            Finding(
                R.TRACE_SCRIPT_FAILED.code,
                "error",
                "runtime",
                f"the script exited with status {run.status}: {run.stderr.strip()[-300:]}",
                location=Location(file=script, line=1, column=0),
            )
        )
    if not run.records:
        out.append(
            Finding(
                R.TRACE_NO_CONVERSION.code,
                R.TRACE_NO_CONVERSION.severity,
                "conversion-tool",
                "the script made no converter call convlint captures (TFLiteConverter, "
                "tf2onnx, torch.onnx.export, keras Model.export, onnx2torch, onnx2tf, "
                "litert_torch, onnxruntime's quantize_static)",
                location=Location(file=script, line=1, column=0),
            )
        )
    return out


def _record_finding(script: str, rec: dict) -> Finding:
    loc = _loc(script, rec)
    if rec.get("error"):
        return Finding(R.CONVERSION_FAILED.code, "error", "conversion-tool",
                       f"{rec['call']} raised {rec['error'][:600]}", location=loc,
                       evidence={"flags": rec.get("flags")})
    return Finding(
        R.CAPTURE_INCOMPLETE.code,
        "warning",
        "conversion-tool",
        f"{rec['call']} was captured, but its "
        + ("source model" if not rec.get("source") else "output")
        + " could not be saved, so it was not checked"
        + (f" ({'; '.join(rec['notes'])[:400]})" if rec.get("notes") else ""),
        location=loc,
    )


def _conversion_report(
    script: str, rec: dict, opts: TraceOptions, progress
) -> ConversionReport | None:
    if rec.get("error") or not rec.get("source") or not rec.get("target"):
        return None
    rep = _check(rec, opts.pipeline, progress)
    loc = _loc(script, rec)
    fs = tuple(
        f.with_(location=replace(f.location, file=loc.file, line=loc.line, column=loc.column))
        for f in rep.findings
    )
    extra = dict(
        rep.extra,
        call_site=rec.get("call_site"),
        converter=rec["converter"],
        call=rec["call"],
        converter_version=rec.get("version"),
        flags=rec.get("flags"),
        output=rec.get("output"),
        calibration=rec.get("calibration"),
    )
    return replace(rep, findings=fs, extra=extra)


def _static_conversion(static: ScriptReport, rec: dict) -> dict | None:
    line = (rec.get("call_site") or {}).get("line")
    for c in static.extra.get("converter_calls", []):
        if line in c["lines"] or line == c["line"]:
            return c
    return None


def _verify_rewrites(script, text, nb, static, checked, findings, opts, tmp, progress) -> list:
    """For each faulty conversion, apply the static fixes located on its call, trace the
    rewritten script (writes redirected), and check the same conversion again. A verified
    rewrite of a notebook is written as a notebook, the edits spliced into their cells."""
    out = list(findings)
    for rec, rep in checked:
        failed = rec.get("error") or (rep is not None and rep.exit_code == 1)
        conv = _static_conversion(static, rec)
        if not failed or conv is None:
            continue
        fixable = [
            f
            for f in out
            if f.repair
            and f.repair.edits
            and f.evidence.get("conversion_line") == conv["line"]
            and f.severity == "error"
        ]
        if not fixable:
            continue
        edits = [TextEdit.from_dict(e) for f in fixable for e in f.repair.edits]
        try:
            new_text = apply(text, edits)
        except ValueError:
            continue
        progress(
            f"trace: verifying the rewrite of line {conv['line']} by tracing the rewritten script"
        )
        d = os.path.join(tmp, f"verify-{rec['index']}")
        run = run_script(script, opts, d, code=new_text, redirect=os.path.join(d, "writes"))
        again = next((r for r in run.records if r["index"] == rec["index"]), None)
        after, ok = None, False
        if (
            again is not None
            and not again.get("error")
            and again.get("source")
            and again.get("target")
        ):
            r2 = _check(again, opts.pipeline, progress)
            after = {
                "max_abs": r2.metrics.get("max_abs"),
                "top1_agreement": r2.metrics.get("top1_agreement"),
                "verdict": r2.verdict,
            }
            ok = r2.verdict == "equivalent" and run.error is None
        elif again is not None and again.get("error"):
            after = {"verdict": "crash", "error": again["error"][:300]}
        written = None
        if ok and opts.write_fixed:
            from convlint.analyzers.report.io import write_new_file

            write_new_file(opts.write_fixed, nb.rewrite(edits) if nb is not None else new_text,
                           protect=(script,))
            written = opts.write_fixed
        out = [f.with_(repair=replace(f.repair, verified=ok, metrics_after=after, output=written))
               if f in fixable else f for f in out]
        # the conversion's findings share the rewrite's state: one fix, one state
        if rep is not None:
            idx = next(i for i, (r, _) in enumerate(checked) if r is rec)
            checked[idx] = (rec, _under_rewrite(rep, fixable[0], ok, after))
    return out


def _under_rewrite(
    rep: ConversionReport, fix_of: Finding, ok: bool, after: dict | None
) -> ConversionReport:
    """The conversion's findings under a rewrite of its call: their repair is that rewrite."""
    from convlint.analyzers.report.findings import Repair

    fix = Repair("rewrite-call", f"the fix of line {fix_of.location.line} above "
                 f"({fix_of.repair.description if fix_of.repair else fix_of.rule})",
                 verified=ok, metrics_after=after)
    fs = tuple(f.with_(repair=fix) if f.severity == "error" else f for f in rep.findings)
    return replace(rep, findings=fs)
