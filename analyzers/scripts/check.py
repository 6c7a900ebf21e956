"""Static analysis of a conversion script, end to end: text in, ``ScriptReport`` out.

Python scripts go through one AST walk (``facts``) and the rules in ``rules_static`` and
``rules_data``; shell scripts and Makefiles through ``shell`` (tf2onnx command lines). Fast (no
framework is imported, nothing is executed) so the language server can run it on every edit.
"""

from __future__ import annotations

import os
from pathlib import Path

from convlint.analyzers import rules as R
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.report.findings import Finding, Location, Repair, ScriptReport
from convlint.analyzers.scripts import edits as E
from convlint.analyzers.scripts import (
    notebook,
    rules_data,  # noqa: F401  (registers its checks)
    rules_quant,  # noqa: F401  (registers its checks)
)
from convlint.analyzers.scripts.edits import TextEdit
from convlint.analyzers.scripts.facts import analyze_text
from convlint.analyzers.scripts.rules_static import (
    CHECKS,
    Ctx,
    _exact_gelu,
    gelu_message,
    opset_message,
    tf2onnx_opset_fault,
)

SHELL_SUFFIXES = (".sh", ".bash", ".mk")


def is_shell(path: str) -> bool:
    name = os.path.basename(path)
    return name.endswith(SHELL_SUFFIXES) or name in ("Makefile", "makefile", "GNUmakefile")


def read_script(path: str) -> str:
    """A script's text. A missing or binary file is a user error (exit 2)."""
    p = Path(path)
    if not p.is_file():
        raise ConvlintError(f"{path}: no such script", rule=R.BAD_ARGUMENTS.code)
    try:
        return p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise ConvlintError(
            f"{path}: cannot read it as a UTF-8 text script ({e.__class__.__name__})",
            rule=R.BAD_ARGUMENTS.code,
        ) from None


def analyze_file(path: str) -> ScriptReport:
    """Read a script (or a notebook's code cells, joined) and analyse it."""
    if notebook.is_notebook(path):
        nb = notebook.read_notebook(path)
        return nb.map_report(analyze_source(nb.text, path))
    return analyze_source(read_script(path), path)


def analyze_source(text: str, path: str) -> ScriptReport:
    """Analyse a script's text (the editor's unsaved buffer, or a file's content)."""
    findings = _shell(text, path) if is_shell(path) else None
    if findings is None:
        facts = analyze_text(text, path)
        if facts.syntax_error is not None:
            e = facts.syntax_error
            f = _finding(
                R.SCRIPT_SYNTAX,
                Location(file=path, line=e.lineno or 1, column=max((e.offset or 1) - 1, 0)),
                f"the script does not parse: {e.msg}",
            )
            return ScriptReport(path, "error", (f,))
        ctx = Ctx(facts)
        findings = [f for chk in CHECKS for f in chk(ctx)]
        extra = {"converter_calls": [_summary(c, facts, ctx.ed.lines) for c in facts.conversions]}
    else:
        extra = {}
    findings.sort(key=lambda f: (f.location.line or 0, f.location.column or 0, f.rule))
    bad = any(f.severity in ("error", "warning") for f in findings)
    return ScriptReport(path, "issues" if bad else "clean", tuple(findings), extra=extra)


def _summary(c, facts, lines: list) -> dict:
    flags = {k: _plain(a.value) for k, a in {**c.kwargs, **c.attrs}.items()}
    s = c.span  # the parser counts columns in UTF-8 bytes; reports count characters
    return {
        "converter": c.converter,
        "call": c.call,
        "line": s.line,
        "column": E.char_col(lines, s.line, s.col),
        "end_line": s.end_line,
        "end_column": E.char_col(lines, s.end_line, s.end_col),
        "source": _source_of(c, facts),
        "output": c.output,
        "flags": flags,
        "lines": sorted(c.lines),
    }


def _source_of(c, facts) -> str | None:
    """The path of the model a converter call converts, where the script makes it known: a
    path argument (from_saved_model, from_tflite), or a model variable loaded from a file."""
    import ast

    if c.converter == "keras.export":
        m = facts.models.get(c.var)
        return m.path if m is not None and m.origin == "load" else None
    a = c.args[0] if c.args else None
    if a is None:
        return None
    if isinstance(a.value, str):
        return a.value
    if (
        isinstance(a.node, ast.Name)
        and (m := facts.models.get(a.node.id)) is not None
        and m.origin == "load"
    ):
        return m.path
    return None


def _plain(v):
    from convlint.analyzers.scripts.facts import UNKNOWN, Sym

    if v is UNKNOWN:
        return "<dynamic>"
    if isinstance(v, Sym):
        return v.name
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)


def _finding(rule: R.Rule, loc: Location, message: str, **kw) -> Finding:
    return Finding(rule.code, rule.severity, rule.stage, message, location=loc, **kw)


def _shell(text: str, path: str) -> list:
    from convlint.analyzers.models.keras_config import keras_layers
    from convlint.analyzers.scripts.shell import find_tf2onnx_commands

    out = []
    base = os.path.dirname(os.path.abspath(path))
    for cmd in find_tf2onnx_commands(text):
        model = next(
            (cmd.flags[k][0] for k in ("--keras", "--saved-model") if k in cmd.flags), None
        )
        if not isinstance(model, str):
            continue
        layers = keras_layers(model, base)
        if not layers:
            continue
        layers = [(c, cfg, None) for c, cfg in layers]
        opset = cmd.flags.get("--opset")
        fault = tf2onnx_opset_fault(
            layers, int(opset[0]) if opset and str(opset[0]).isdigit() else None
        )
        if fault and opset is not None:  # a fault needs a numeric --opset
            needs, op, new = fault
            v, line, a, b = opset
            out.append(
                _finding(
                    R.OPSET_TOO_LOW,
                    Location(file=path, line=line, column=a, end_line=line, end_column=b),
                    opset_message(f"--opset {v} ({model})", needs, op),
                    evidence={"opset": int(v), "needs": needs, "op": op},
                    repair=Repair(
                        "rewrite-call",
                        f"convert with --opset {new}",
                        edits=(TextEdit(line, a, line, b, str(new)).to_dict(path),),
                    ),
                )
            )
        gelu = _exact_gelu(layers)
        if gelu:
            loc = Location(
                file=path, line=cmd.line, column=cmd.col, end_line=cmd.line, end_column=cmd.end_col
            )
            out.append(
                _finding(
                    R.TF2ONNX_EXACT_GELU,
                    loc,
                    gelu_message(model, gelu[0]),
                    evidence={"op": gelu[0]},
                )
            )
    return out
