"""``--html``: a self-contained HTML report of a check, diff or trace.

One file with no external resource (styles, script and plots are inline; plots are PNGs drawn by
matplotlib and embedded as data URIs), so it can be attached to a CI run or mailed. Per
conversion: the verdict and metrics, the per-layer error along the aligned graph with the layer
where the error first jumps marked, the alignment table, and the findings with their repairs and
before/after metrics. Every string from a model or a script is escaped: a layer name is data,
never markup.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
from urllib.parse import quote

from convlint import __version__
from convlint.analyzers import rules as R
from convlint.analyzers.report.render import repair_state

_BASE: str | None = None  # the folder of the document being written (links are relative to it)
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}
FLOOR = 1e-9  # an exact match (error 0) is drawn here on the log axis

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px}
header .sub{opacity:.75;font-size:13px}main{padding:18px 28px;max-width:1200px}
section.report{background:#fff;border:1px solid #dde1e7;border-radius:8px;margin:0 0 22px;
padding:16px 20px}
h2{font-size:16px;margin:0 0 8px;overflow-wrap:break-word}h3{font-size:14px;margin:18px 0 6px}
.badge{display:inline-block;border-radius:10px;padding:1px 10px;font-size:12px;font-weight:600;
color:#fff}
.v-clean,.v-equivalent,.v-healthy{background:#1a7f37}.v-issues,.v-divergent,.v-faulty{background:#c62828}
.v-crash,.v-error{background:#6e40c9}.s-error{color:#c62828}.s-warning{color:#9a6700}.s-info{color:#0969da}
table{border-collapse:collapse;width:100%;font-size:13px;margin:4px 0}
th,td{border-bottom:1px solid #eaecef;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f4f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.mono,span.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;overflow-wrap:normal;word-break:normal}
tr.first td{background:#fff1f0;font-weight:600}td.where{min-width:9em}tr.bad td.num{color:#c62828}
.metrics{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.metric{border:1px solid #dde1e7;border-radius:6px;padding:6px 12px;min-width:120px}
.metric b{display:block;font-size:16px}.metric span{font-size:12px;color:#57606a}
img.plot{max-width:100%;border:1px solid #eaecef;border-radius:6px}
.repair{font-size:12px;color:#1a7f37}.repair.unverified{color:#9a6700}.note{color:#57606a;font-size:13px}
details summary{cursor:pointer;color:#0969da}
"""

# Marks the document once every embedded plot has decoded (what the headless-browser test reads);
# nothing else runs and nothing is fetched.
SCRIPT = """
window.addEventListener('load',function(){
var imgs=[].slice.call(document.querySelectorAll('img.plot'));
var ok=imgs.filter(function(i){return i.complete&&i.naturalWidth>0}).length;
document.documentElement.setAttribute('data-plots',imgs.length);
document.documentElement.setAttribute('data-plots-rendered',ok);});
"""


def to_html(report, *, command: str | None = None, when: str | None = None,
            path: str | None = None) -> str:
    """The report (a CheckReport, ConversionReport or ScriptReport) as one HTML document.
    ``command`` (the command line) and ``when`` (the time) go in the header; ``path``, where the
    document is written, makes the repaired files' links relative to it."""
    global _BASE
    _BASE = os.path.dirname(os.path.abspath(path)) if path else None
    d = report.to_dict()
    subs = sub_reports(d)
    verdict = d.get("verdict", "")
    body = []
    for r in subs:
        if r.get("kind") == "conversion":
            body.append(_conversion(r))
        else:
            body.append(_script(r))
    summary = d.get("summary") or {}
    counts = ", ".join(f"{summary[s]} {s}" for s in ("error", "warning", "info") if summary.get(s))
    sub = f"{len(subs)} report{'s' if len(subs) != 1 else ''}" + (
        f" &middot; {_e(counts)}" if counts else ""
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>convlint report: {_e(verdict)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>convlint report {_badge(verdict)}</h1>"
        f'<div class="sub">convlint {_e(__version__)} &middot; {sub}'
        + (f" &middot; {_e(when)}" if when else "")
        + "</div>"
        + (f'<div class="sub mono cmd">{_e(command)}</div>' if command else "")
        + "</header>"
        f"<main>{''.join(body) or '<p class=note>Nothing was checked.</p>'}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )


def sub_reports(d: dict) -> list:
    """A report dict's own reports: a check's list, or the report itself."""
    return d["reports"] if d.get("kind") == "check" else [d]


# --- one conversion ---------------------------------------------------------------------------
def _conversion(r: dict) -> str:
    src, tgt = r.get("source") or {}, r.get("target") or {}
    out = [f"<section class=\"report\"><h2>{_e(src.get('path'))} &rarr; {_e(tgt.get('path'))} "
           f"{_badge(r.get('verdict'))}</h2>",
           f"<div class=note>{_e(src.get('format'))} &rarr; {_e(tgt.get('format'))}"
           + _inputs_note(r) + "</div>", _metrics(r.get("metrics") or {})]
    loc = r.get("localization") or {}
    groups = layer_groups(loc.get("layers") or [])
    first = first_jump(r, groups)
    threshold = threshold_of(r)
    if groups:
        out.append("<h3>Per-layer error along the aligned graph</h3>")
        out.append(_plot(groups, first, threshold))
    elif r.get("verdict") == "equivalent":
        out.append(
            "<p class=note>The outputs agree within tolerance, so no per-layer comparison was "
            "needed.</p>"
        )
    elif r.get("verdict") == "divergent":
        out.append(
            "<p class=note>No per-layer comparison (localization was skipped or found no aligned "
            "layers).</p>"
        )
    out.append(_findings(r.get("findings") or [], r.get("metrics") or {}))
    if groups or (loc.get("alignment") or {}).get("kernels"):
        out.append(_alignment(loc, groups, first, threshold))
    out.append("</section>")
    return "".join(out)


def layer_groups(rows: list) -> list:
    """Per-layer rows, one per target tensor. A converter fuses chains (conv, batch norm,
    activation) into one op, so several source layers are compared with the same target tensor;
    only the layer whose output that tensor *is* (the best match: the earliest within 2x of the
    smallest error) is meaningful, the others are listed under it as ``fused``. In forward order.
    Out: [{layer, target, rel_err, fused}]."""
    by_target: dict = {}
    for i, row in enumerate(rows):
        key = row.get("target") if row.get("target") is not None else ("<none>", i)
        by_target.setdefault(key, []).append((i, row))
    owners = {}
    for members in by_target.values():
        # a layer the target fused into a later one is listed under it, never shown as broken
        own = [(i, r) for i, r in members if not r.get("fused_into")] or members
        members = own + [m for m in members if m not in own]
        best = min(_err(r) for _, r in own)
        i, shown = next((i, r) for i, r in own if _err(r) <= 2 * best)
        owners[i] = {
            "layer": shown["layer"],
            "target": shown.get("target"),
            "rel_err": shown.get("rel_err"),
            "fused": [r["layer"] for _, r in members if r is not shown],
        }
    return [owners[i] for i in sorted(owners)]


def _err(row: dict) -> float:
    e = row.get("rel_err")
    return math.inf if e is None else float(e)


def first_jump(r: dict, groups: list) -> int | None:
    """Index (in ``groups``) of the layer where the error first jumps: the one the first-divergent
    finding names (with its fused group), else the first above the threshold."""
    f = _first_divergent(r)
    if f is not None:
        names = {f.get("layer"), *((f.get("evidence") or {}).get("fused_group") or [])}
        for i, g in enumerate(groups):
            if g["layer"] in names or names & set(g["fused"]):
                return i
    th = threshold_of(r)
    return next((i for i, g in enumerate(groups) if _err(g) > th), None) if th is not None else None


def threshold_of(r: dict) -> float | None:
    f = _first_divergent(r)
    if f is not None and (f.get("evidence") or {}).get("threshold") is not None:
        return float(f["evidence"]["threshold"])
    tol = r.get("tolerance") or {}
    return float(tol["rtol"]) if tol.get("rtol") is not None else None


def _first_divergent(r: dict) -> dict | None:
    return next((f for f in r.get("findings") or [] if f["rule"] == R.FIRST_DIVERGENT.code), None)


def _plot(groups: list, first: int | None, threshold: float | None) -> str:
    png = plot_png(groups, first, threshold)
    where = (f"; the error first jumps at {groups[first]['layer']}" if first is not None else "")
    if first is not None and groups[first]["fused"]:
        where += f" (with {', '.join(groups[first]['fused'])} fused into it)"
    alt = f"relative error per layer, {len(groups)} layers{where}"
    data = base64.b64encode(png).decode()
    return (
        f'<img class="plot" alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<div class=note>{_e(alt[0].upper() + alt[1:])}. Each point is one layer's output against "
        "the converted model's matching tensor; layers a converter fused away are shown by the "
        "fused op's output.</div>"
    )


def plot_png(groups: list, first: int | None, threshold: float | None) -> bytes:
    """The per-layer error plot as PNG bytes (matplotlib, Agg: no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    from matplotlib.figure import Figure

    n = len(groups)
    xs = list(range(n))
    finite = [_err(g) for g in groups]
    top = max([e for e in finite if e != math.inf] + [threshold or FLOOR, FLOOR]) * 10
    ys = [top if e == math.inf else max(e, FLOOR) for e in finite]
    fig = Figure(figsize=(max(7.0, min(14.0, 0.35 * n + 4)), 3.6), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_yscale("log")
    ax.set_ylim(FLOOR / 3, max(ys) * 40)  # room above the highest point for the label
    ax.plot(xs, ys, color="#8c959f", linewidth=1, zorder=1)
    bad = [threshold is not None and y > threshold for y in ys]
    for above, color, label in (
        (False, "#1a7f37", "within threshold"),
        (True, "#c62828", "above threshold"),
    ):
        pts = [(x, y) for x, y, b in zip(xs, ys, bad, strict=True) if b == above]
        ax.scatter(
            [x for x, _ in pts], [y for _, y in pts], color=color, s=22, zorder=2, label=label
        )
    if threshold is not None:
        ax.axhline(
            threshold,
            color="#9a6700",
            linestyle="--",
            linewidth=1,
            label=f"threshold {threshold:g}",
        )
    if first is not None:
        ax.axvline(first, color="#c62828", linewidth=1.2, alpha=0.6)
        fused = groups[first]["fused"]
        label = _short(groups[first]["layer"], 28) + (
            f" (+{_short(', '.join(fused), 28)})" if fused else ""
        )
        ax.annotate(f"first jump: {label}", xy=(first, ys[first]),
                    xytext=(8, 8), textcoords="offset points", color="#c62828", fontsize=9)
    if n <= 40:
        ax.set_xticks(xs)
        ax.set_xticklabels(
            [_short(g["layer"], 18) for g in groups], rotation=60, ha="right", fontsize=7
        )
    else:
        ax.set_xlabel("layer (forward order)")
    ax.set_ylabel("relative error")
    ax.grid(True, which="major", axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _alignment(loc: dict, groups: list, first: int | None, threshold: float | None) -> str:
    out = ["<h3>Alignment</h3>"]
    if groups:
        out.append(
            "<table><tr><th>#</th><th>source layer</th><th>target tensor</th>"
            "<th class=num>relative error</th><th>also compared here (fused layers)</th></tr>"
        )
        for i, g in enumerate(groups):
            e = _err(g)
            cls = (
                "first"
                if i == first
                else ("bad" if threshold is not None and e > threshold else "")
            )
            out.append(
                f'<tr class="{cls}"><td class=num>{i}</td><td class=mono>{_e(g["layer"])}</td>'
                f"<td class=mono>{_e(g['target'] or '(no tensor)')}</td>"
                f"<td class=num>{_num(g.get('rel_err'))}</td>"
                f"<td class=mono>{_e(', '.join(g['fused']))}</td></tr>"
            )
        out.append("</table>")
    kernels = (loc.get("alignment") or {}).get("kernels") or []
    if kernels:
        out.append(
            f"<details><summary>Weights: {len(kernels)} matched "
            f"kernels</summary><table><tr><th>source layer</th><th>target op</th><th>matched "
            f"by</th><th class=num>score</th></tr>"
        )
        for k in kernels:
            bn = f" + {k['bn_folded_from']}" if k.get("bn_folded_from") else ""
            out.append(
                f"<tr><td class=mono>{_e(str(k.get('source')) + bn)}</td><td "
                f"class=mono>{_e(k.get('target'))}</td><td>{_e(k.get('method'))}</td><td "
                f"class=num>{_num(k.get('score'))}</td></tr>"
            )
        out.append("</table></details>")
    al = loc.get("alignment") or {}
    for key, label in (("unmatched_source", "source layers with no match"),
                       ("unmatched_target", "target ops with no match")):
        if al.get(key):
            out.append(
                f"<div class=note>{_e(label)}: <span "
                f"class=mono>{_e(', '.join(map(str, al[key])))}</span></div>"
            )
    return "".join(out)


# --- findings ---------------------------------------------------------------------------------
def _findings(findings: list, before: dict) -> str:
    if not findings:
        return "<p class=note>No findings.</p>"
    # errors first; info findings collapsed under their own summary
    findings = sorted(findings, key=lambda f: SEVERITY_ORDER.get(f["severity"], 3))
    head = ("<table><tr><th>severity</th><th>rule</th><th>stage</th><th>layer / line</th>"
            "<th>message and repair</th></tr>")
    out = ["<h3>Findings</h3>" + head]
    infos = 0
    for f in findings:
        if f["severity"] == "info" and not infos:
            infos = sum(1 for g in findings if g["severity"] == "info")
            out.append(f"</table><details class=infos><summary>{infos} info finding"
                       f"{'s' if infos > 1 else ''}</summary>{head}")
        code = f["rule"]
        name = R.RULES[code].name if code in R.RULES else ""
        href = R.RULES[code].docs if code in R.RULES else None
        rule = f"<a href=\"{_e(href)}\">{_e(code)}</a>" if href else _e(code)
        loc = f.get("location") or {}
        where = f.get("layer") or ""
        if loc.get("file") and loc.get("line"):
            where = (where + " " if where else "") + f"{loc['file']}:{loc['line']}"
        msg = f"{_e(f['message'])}{_repair(f.get('repair'), before)}"
        out.append(f"<tr><td class=\"s-{_e(f['severity'])}\">{_e(f['severity'])}</td><td>{rule}<br>"
                   f"<span class=note>{_e(name)}</span></td><td>{_e(f['stage'])}</td>"
                   f"<td class=\"mono where\">{_e(where)}</td><td>{msg}</td></tr>")
    out.append("</table></details>" if infos else "</table>")
    return "".join(out)


def _repair(rep: dict | None, before: dict) -> str:
    if not rep:
        return ""
    state = _e(repair_state(rep))
    s = (
        f'<div class="repair{"" if rep.get("verified") else " unverified"}">'
        f'repair ({_e(rep["kind"])}, {state}): '
        f"{_e(rep['description'])}"
        + (f" &rarr; {_link(rep['output'])}" if rep.get("output") else "")
    )
    after = rep.get("metrics_after") or {}
    if after:
        s += (
            "<table><tr><th></th><th class=num>max_abs</th><th class=num>top-1 agreement</th>"
            "<th>verdict</th></tr>"
            f"<tr><td>before</td><td class=num>{_num(before.get('max_abs'))}</td>"
            f"<td class=num>{_num(before.get('top1_agreement'))}</td><td></td></tr>"
            f"<tr><td>after</td><td class=num>{_num(after.get('max_abs'))}</td>"
            f"<td class=num>{_num(after.get('top1_agreement'))}</td>"
            f"<td>{_e(after.get('verdict', ''))}</td></tr></table>"
        )
    return s + "</div>"


# --- scripts, traces, training ----------------------------------------------------------------
_KINDS = {"script": "static rules", "trace": "instrumented run", "training": "training check"}


def _script(r: dict) -> str:
    kind = r.get("kind", "script")
    out = [
        f'<section class="report"><h2>{_e(r.get("script"))} {_badge(r.get("verdict"))}</h2>',
        f"<div class=note>{_e(_KINDS.get(kind, kind))}</div>",
        _findings(r.get("findings") or [], {}),
    ]
    out.append("</section>")
    for c in r.get("conversions") or []:
        out.append(_conversion(c))
    return "".join(out)


# --- helpers ----------------------------------------------------------------------------------
def _link(path: str) -> str:
    """A written file as a link, relative to the document's folder when that is known."""
    href = path
    if _BASE:
        href = os.path.relpath(os.path.abspath(path), _BASE)
    return f"<a class=mono href=\"{_e(quote(href.replace(os.sep, '/')))}\">{_e(path)}</a>"


def _metric(m: dict, k: str) -> str:
    return _num(m.get(k)) if k != "cosine_min" or m.get(k) is None else f"{m[k]:.6f}"


def _metrics(m: dict) -> str:
    labels = (
        ("max_abs", "max |difference|"),
        ("mean_abs", "mean |difference|"),
        ("cosine_min", "min cosine"),
        ("top1_agreement", "top-1 agreement"),
    )
    # the minimum cosine to 6 decimals, as the text output prints it (0.999995 is not 1)
    cells = [
        f"<div class=metric><b>{_metric(m, k)}</b><span>{_e(label)}</span></div>"
        for k, label in labels
        if k in m
    ]
    return f"<div class=metrics>{''.join(cells)}</div>" if cells else ""


def _inputs_note(r: dict) -> str:
    i = r.get("inputs") or {}
    tol = r.get("tolerance") or {}
    s = f" &middot; {i.get('count')} inputs ({_e(i.get('origin'))})" if i.get("count") else ""
    if tol:
        s += f" &middot; atol {_num(tol.get('atol'))}, rtol {_num(tol.get('rtol'))}"
    return s


def _badge(v) -> str:
    return f"<span class=\"badge v-{_e(v)}\">{_e(v)}</span>" if v else ""


def _num(v) -> str:
    if v is None:
        return "&ndash;"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        if v == 0:
            return "0"
        if abs(v) >= 1e300:
            return "&infin;"
        return f"{v:.4g}"
    return _e(v)


def _short(s, n: int) -> str:
    s = str(s)
    return s if len(s) <= n else s[: n - 1] + "\u2026"


def _e(s) -> str:
    return html.escape("" if s is None else str(s), quote=True)
