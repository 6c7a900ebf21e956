"""Renderers: they only format. JSON output can be read back with ``ConversionReport.from_dict``."""

from __future__ import annotations

import json

from convlint.analyzers.report.findings import ConversionReport

MARK = {"error": "E", "warning": "W", "info": "I"}


def to_json(report) -> str:
    return json.dumps(report.to_dict(), indent=2, allow_nan=False)


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def to_text(report, *, verbose: bool = False, color: bool = False) -> str:
    """Dispatch on the report's kind."""
    kind = getattr(report, "kind", "conversion")
    if kind == "check":
        parts = [to_text(r, verbose=verbose, color=color) for r in report.reports
                 if verbose or r.verdict not in ("clean", "equivalent", "healthy")]
        doc = report.to_dict()
        d = doc["summary"]
        parts += _check_sections(doc, verbose=verbose)
        if not d["reports"] and not doc.get("skipped"):  # a silent pass would look like a clean one
            parts.append(
                "nothing to check: no conversion script, model pair or training script was found "
                "(scripts that call a converter, [tool.convlint] pairs; see README, convlint check)"
            )
        parts.append(
            f"{d['reports']} report{'s' if d['reports'] != 1 else ''}: {d['error']} errors, "
            f"{d['warning']} warnings, {d['info']} infos"
        )
        return "\n\n".join(parts)
    if kind in ("script", "trace", "training"):
        return _script_text(report, verbose=verbose, color=color)
    return _conversion_text(report, verbose=verbose, color=color)


def _check_sections(doc: dict, *, verbose: bool) -> list[str]:
    """The check's own short sections: pairs skipped by --changed-since, the baseline
    comparison (every regression and improvement; unchanged pairs only counted unless
    verbose), and the baseline written."""
    from convlint.analyzers.baseline import describe

    out = []
    skipped = doc.get("skipped")
    if skipped:
        n = len(skipped)
        lines = [f"{n} pair{'s' if n != 1 else ''} skipped ({skipped[0]['reason']})"]
        lines += [f"  {s['pair']}" for s in skipped] if verbose else []
        out.append("\n".join(lines))
    b = doc.get("baseline")
    if b:
        words = {"regressions": "regression", "improvements": "improvement",
                 "unchanged": "unchanged", "removed": "removed"}
        counts = [f"{len(b[k])} {w if len(b[k]) == 1 else k}" for k, w in words.items()
                  if b[k] or k != "removed"]
        lines = [f"baseline {b['file']}: " + ", ".join(counts)]
        for key, word in words.items():
            if key != "unchanged" or verbose:
                lines += [f"  {word}: {describe(item)}" for item in b[key]]
        out.append("\n".join(lines))
    if doc.get("baseline_written"):
        out.append(f"baseline written to {doc['baseline_written']}")
    return out


def _paint(color: bool):
    def c(code: str, s: str) -> str:
        return f"\x1b[{code}m{s}\x1b[0m" if color else s
    return c


def position(loc: dict, default: str) -> str:
    """``file:line:col``, 1-based like ruff; in a notebook ``nb.ipynb:cell 8:3:5``, the cell
    counted from 1 as editors show it (``location.cell`` is the 0-based index in the file)."""
    where = loc.get("file") or default
    if not loc.get("line"):
        return where
    col = (loc.get("column") or 0) + 1
    if loc.get("cell") is not None:
        return f"{where}:cell {loc['cell'] + 1}:{loc.get('cell_line')}:{col}"
    return f"{where}:{loc['line']}:{col}"


VERIFY_HINT = "rerun with --repair to write and verify it"
TRACE_VERIFY_HINT = "convlint diff SOURCE TARGET --repair writes and verifies it"


def repair_state(rep: dict, hint: str = VERIFY_HINT) -> str:
    """A repair's state in words: verified, or how it can be (a model repair planned without
    ``--repair`` was neither written nor checked)."""
    if rep.get("verified"):
        return "verified"
    if rep.get("output") or rep.get("kind") in ("rewrite-call", "change-hyperparameter", "none"):
        return "not verified"
    return f"not verified: {hint}"


def _script_text(report, *, verbose: bool, color: bool) -> str:
    """ruff-like lines: path:line:col: CODE message, then the fix and, for traces, each
    captured conversion's own report."""
    c = _paint(color)
    d = report.to_dict()
    vcol = {
        "clean": "32",
        "healthy": "32",
        "issues": "33",
        "faulty": "31",
        "crash": "31",
        "error": "33",
    }.get(d["verdict"], "0")
    head = {"trace": " (traced)", "training": " (training)"}.get(d["kind"], "")
    tr = d.get("training") or {}
    if tr.get("steps_recorded") is not None:
        head += f": {tr['steps_recorded']} steps recorded ({tr.get('framework')})" + (
            f", stopped early: {tr['stopped']}" if tr.get("stopped") else "")
    lines = [f"{d['script']}: {c(vcol, d['verdict'].upper())}{head}"]
    shown = [f for f in d["findings"] if verbose or f["severity"] != "info"]
    for f in shown:
        where = position(f.get("location") or {}, d["script"])
        col = {"error": "31", "warning": "33", "info": "36"}[f["severity"]]
        layer = f" [{f['layer']}]" if d["kind"] == "training" and f.get("layer") else ""
        lines.append(f"{where}: {c(col, f['rule'])} [{f['severity']}]{layer} {f['message']}")
        rep = f.get("repair")
        if rep:
            state = (" (verified by tracing the rewritten script)" if rep.get("verified") else "")
            lines.append(
                f"    fix: {rep['description']}{state}"
                + (f" -> {rep['output']}" if rep.get("output") else "")
            )
        for alt in (f.get("evidence") or {}).get("fixes", []):
            lines.append(f"    or: {alt['description']}")
    for conv in d.get("conversions", []):
        site = conv.get("call_site") or {}
        # the line of the converter call (from_keras_model, not the later convert()) when known
        at = (f"cell {site['cell'] + 1}:{site.get('cell_line')}" if "cell" in site
              else f"line {conv.get('call_line') or site.get('line')}")
        lines.append(f"  conversion at {at} ({conv.get('call')}, {conv.get('converter_version')}):")
        lines.extend("    " + ln for ln in _conversion_text(
            conv, verbose=verbose, color=color, hint=TRACE_VERIFY_HINT).splitlines())
    hidden = len(d["findings"]) - len(shown)
    if hidden:
        lines.append(
            f"  ({hidden} info finding{'s' if hidden > 1 else ''} hidden; --verbose shows them)"
        )
    return "\n".join(lines)


def _conversion_text(report: ConversionReport | dict, *, verbose: bool = False, color: bool = False,
                     hint: str = VERIFY_HINT) -> str:
    """A short summary: the verdict, the metrics, then one line per finding. Takes a report or
    its dict (a trace's conversions are already dicts)."""
    c = _paint(color)
    d = report if isinstance(report, dict) else report.to_dict()
    lines = []
    verdict = d["verdict"]
    vcol = {"equivalent": "32", "divergent": "31", "crash": "31", "error": "33"}.get(verdict, "0")
    if d.get("source") and d.get("target"):
        lines.append(f"{d['source']['path']} ({d['source']['format']}) -> "
                     f"{d['target']['path']} ({d['target']['format']})")
    lines.append(
        f"verdict: {c(vcol, verdict.upper())}"
        + (
            f"   ({d['inputs']['count']} {d['inputs']['origin']} inputs)"
            if d.get("inputs", {}).get("count")
            else ""
        )
    )
    m = d.get("metrics") or {}
    if any(v is not None for v in m.values()):
        lines.append(
            "metrics: "
            + "  ".join(
                f"{k}={_fmt(v) if k != 'cosine_min' or v is None else f'{v:.6f}'}"
                for k, v in m.items()
            )
        )
    tol = d.get("tolerance")
    if tol:
        t = f"tolerance: atol={_fmt(tol.get('atol'))} rtol={_fmt(tol.get('rtol'))}"
        if tol.get("atol_effective", tol.get("atol")) != tol.get("atol"):
            t += f" (atol widened to {_fmt(tol['atol_effective'])} by measured noise)"
        lines.append(t)
    shown = [f for f in d["findings"] if verbose or f["severity"] != "info"]
    hidden = len(d["findings"]) - len(shown)
    for f in shown:
        sev = f["severity"]
        col = {"error": "31", "warning": "33", "info": "36"}[sev]
        where = f" [{f['layer']}]" if f.get("layer") else ""
        lines.append(f"  {c(col, MARK[sev])} {f['rule']} {f['stage']}{where}: {f['message']}")
        rep = f.get("repair")
        if rep:
            state = repair_state(rep, hint)
            lines.append(f"      repair ({rep['kind']}, {state}): {rep['description']}"
                         + (f" -> {rep['output']}" if rep.get("output") else ""))
    if hidden:
        lines.append(
            f"  ({hidden} info finding{'s' if hidden > 1 else ''} hidden; --verbose shows them)"
        )
    loc = d.get("localization")
    if verbose and loc:
        al = loc.get("alignment", {})
        lines.append("  alignment (weights):")
        for k in al.get("kernels", []):
            bn = f" + {k['bn_folded_from']}" if k.get("bn_folded_from") else ""
            lines.append(
                f"    {k['source']}{bn} -> {k['target']}  ({k['method']}, score {k['score']:.3f})"
            )
        lines.append("  per-layer relative error (activations):")
        for row in loc.get("layers", []):
            if row.get("fused_into"):  # the target has no tensor of its own for it
                lines.append(f"    {row['layer']:<32} {'fused':>10}  into {row['fused_into']} "
                             f"({row.get('target') or 'no tensor'})")
                continue
            err = row.get("rel_err")
            lines.append(
                f"    {row['layer']:<32} {_fmt(err):>10}  {row.get('target') or '(no tensor)'}"
            )
    if verbose and d.get("runs"):
        for role, info in d["runs"].items():
            lines.append(
                f"  {role}: TVM route: "
                f"{info.get('tvm_route') or info.get('tvm_error') or 'not run'}"
            )
    return "\n".join(lines)
