"""Findings to LSP, in one place: diagnostics, ranges, related information and quick fixes.

In: ``Finding`` values (from the static script rules, a conversion check, a trace, a training
check; a notebook cell's mapped to the cell) and the document's lines; ``document_diagnostics``
merges every source for one document. Out: lsprotocol ``Diagnostic`` and ``CodeAction`` values.
Finding columns
are 0-based characters (code points); the position codec turns them into the client's units.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from lsprotocol import types as T

from convlint.analyzers import rules as R
from convlint.analyzers.report.findings import Finding

SOURCE = "convlint"
_SEV = {"error": T.DiagnosticSeverity.Error, "warning": T.DiagnosticSeverity.Warning,
        "info": T.DiagnosticSeverity.Information}


def uri_of(path: str) -> str:
    return Path(path).resolve().as_uri()


def _clamp(lines, line: int, col: int) -> tuple[int, int]:
    """A 0-based (line, character) inside the document."""
    if not lines:
        return 0, 0
    line = min(max(line, 0), len(lines) - 1)
    text = lines[line].rstrip("\r\n")
    return line, min(max(col, 0), len(text))


def line_range(lines, line: int, col: int | None = None, end_line: int | None = None,
               end_col: int | None = None) -> tuple[int, int, int, int]:
    """A 0-based range from a finding's 1-based line and 0-based columns. Without an end, the
    range runs to the end of the line's text (without trailing blanks), so it is never empty."""
    l0, c0 = _clamp(lines, line - 1, col or 0)
    if col is None and lines:  # start at the first non-blank character
        text = lines[l0]
        c0 = len(text) - len(text.lstrip())
    if end_line is not None and end_col is not None:
        l1, c1 = _clamp(lines, end_line - 1, end_col)
    else:
        l1 = l0
        c1 = len(lines[l0].rstrip()) if lines else 0
    if (l1, c1) <= (l0, c0):
        l1, c1 = l0, max(c0 + 1, len(lines[l0].rstrip()) if lines else 0)
    return l0, c0, l1, c1


def to_range(codec, lines, r: tuple[int, int, int, int]) -> T.Range:
    rng = T.Range(T.Position(r[0], r[1]), T.Position(r[2], r[3]))
    if codec is None or (r[2] < len(lines) and lines[r[0]].isascii() and lines[r[2]].isascii()):
        return rng  # an ASCII character is one code unit in UTF-8, -16 and -32 alike
    return codec.range_to_client_units(lines, rng)


def diagnostic(
    f: Finding, rng: T.Range, message: str | None = None, related=None, origin: str = "static"
) -> T.Diagnostic:
    rule = R.RULES.get(f.rule)
    return T.Diagnostic(
        range=rng,
        message=message or f.message,
        severity=_SEV.get(f.severity, T.DiagnosticSeverity.Warning),
        code=f.rule,
        code_description=T.CodeDescription(href=rule.docs) if rule else None,
        source=SOURCE,
        related_information=related or None,
        data={"rule": f.rule, "origin": origin, "layer": f.layer},
    )


def finding_diagnostic(f: Finding, lines, codec, origin: str = "static") -> T.Diagnostic:
    loc = f.location
    r = line_range(lines, loc.line or 1, loc.column, loc.end_line, loc.end_column)
    return diagnostic(f, to_range(codec, lines, r), origin=origin)


def conversion_message(f: Finding, report) -> str:
    tgt = report.target.path if report.target else "the converted model"
    head = f"{Path(tgt).name}: {f.message}"
    if f.layer and f.layer not in f.message:
        head += f" (layer {f.layer})"
    m = report.metrics or {}
    if f.rule == R.OUTPUTS_DIVERGE.code and m.get("max_abs") is not None:
        head += f" [max_abs {m['max_abs']:.3g}" + (
            f", top-1 agreement {m['top1_agreement']:.0%}]"
            if m.get("top1_agreement") is not None
            else "]"
        )
    if f.repair and f.repair.kind != "none":
        head += f". Repair: {f.repair.description}"
        if f.repair.output:
            head += f" -> {f.repair.output}" + (" (verified)" if f.repair.verified else "")
    return head


def related(f: Finding, report) -> list:
    """Where a conversion finding points in the models: the source layer and the target node."""
    out = []
    for side, node in (
        ("source", f.location.source_node or f.layer),
        ("target", f.location.target_node),
    ):
        ref = getattr(report, side)
        path = ref.path if ref else None
        if not path:
            continue
        what = f"{side} model {Path(path).name}" + (
            f", {'layer' if side == 'source' else 'node'} {node}" if node else ""
        )
        out.append(T.DiagnosticRelatedInformation(
            T.Location(uri_of(path), T.Range(T.Position(0, 0), T.Position(0, 0))), what))
    return out


def conversion_diagnostics(report, call_range: T.Range, min_severity: str = "warning") -> list:
    """A ``ConversionReport``'s findings as diagnostics on the converter call (or the config
    entry) that produced the target. Info findings (noise, import routes) stay in the report."""
    keep = ("error", "warning") if min_severity == "warning" else ("error", "warning", "info")
    return [
        (
            diagnostic(
                f, call_range, conversion_message(f, report), related(f, report), "conversion"
            ),
            f,
        )
        for f in report.findings
        if f.severity in keep
    ]


def document_diagnostics(lines, codec, path: str, *, static=(), conversions=(), trace=None,
                         training=None) -> list:
    """Every diagnostic of one document (a script, or a notebook cell), merged from every source,
    as (Diagnostic, Finding, origin) in this order:
    - ``static``: the static rules' findings (policy applied);
    - ``conversions``: (ConversionReport with policy applied, the converter call's range) pairs,
      each report's findings on its call;
    - ``trace``: a trace ScriptReport's findings with a line, unless a diagnostic above already
      shows the same rule on the same line;
    - ``training``: a train-check ScriptReport's findings in this file (a run-level one, with no
      line of its own, on the first line).
    Info findings of a trace or a training check stay in their report."""
    out = [(finding_diagnostic(f, lines, codec), f, "static") for f in static]
    for rep, rng in conversions:
        out += [(d, f, "conversion") for d, f in conversion_diagnostics(rep, rng)]
    if trace is not None:
        seen = {(d.code, d.range.start.line) for d, _, _ in out}
        for f in list(trace.findings) + [
            f for c in trace.conversions for f in c.findings if f.location.line
        ]:
            if f.severity == "info" or not f.location.line:
                continue
            d = finding_diagnostic(f, lines, codec, origin="trace")
            if (d.code, d.range.start.line) not in seen:
                out.append((d, f, "trace"))
    if training is not None:
        for f in training.findings:
            if f.severity == "info" or (
                f.location.file and os.path.abspath(f.location.file) != path
            ):
                continue
            g = f if f.location.line else f.with_(location=replace(f.location, file=path, line=1))
            out.append((finding_diagnostic(g, lines, codec, origin="training"), f, "training"))
    return out


def quick_fixes(
    f: Finding, diag: T.Diagnostic, uri: str, version: int | None, lines, codec
) -> list:
    """Every fix a finding carries, as quick fixes (WorkspaceEdits on the document's version): the
    rule's preferred rewrite first (``isPreferred``), then its alternatives (``evidence["fixes"]``,
    e.g. "keep float16 weights instead"), not preferred."""
    fixes = []
    if f.repair is not None and f.repair.edits:
        fixes.append((f.repair.description, f.repair.edits, True))
    alts = f.evidence.get("fixes") if isinstance(f.evidence, dict) else None
    for alt in alts if isinstance(alts, list) else ():
        if isinstance(alt, dict) and alt.get("edits"):
            fixes.append((alt.get("description") or "alternative fix", alt["edits"], False))
    return [_code_action(desc, edits, preferred, diag, uri, version, lines, codec)
            for desc, edits, preferred in fixes]


def _code_action(
    desc: str,
    edits,
    preferred: bool,
    diag: T.Diagnostic,
    uri: str,
    version: int | None,
    lines,
    codec,
) -> T.CodeAction:
    text_edits = []
    for e in edits:
        r = (e["start"]["line"] - 1, e["start"]["column"], e["end"]["line"] - 1, e["end"]["column"])
        text_edits.append(T.TextEdit(to_range(codec, lines, r), e["new_text"]))
    change = T.TextDocumentEdit(
        T.OptionalVersionedTextDocumentIdentifier(uri=uri, version=version), text_edits
    )
    return T.CodeAction(
        title=f"convlint: {desc}",
        kind=T.CodeActionKind.QuickFix,
        diagnostics=[diag],
        is_preferred=preferred,
        edit=T.WorkspaceEdit(document_changes=[change]),
    )


def overlaps(a: T.Range, b: T.Range) -> bool:
    return (a.start.line, a.start.character) <= (b.end.line, b.end.character) and \
        (b.start.line, b.start.character) <= (a.end.line, a.end.character)
