"""``train-check --verify-fix``: apply each proposed fix as a source edit to a copy of the script,
rerun a short training in the same sandbox with the same limits, and call the fix verified only
when the symptom is gone and the metric improved.

In: the report of ``check.train_check`` and the script; out: the same report whose findings'
repairs carry ``verified``, ``edits``, ``metrics_after`` (and ``output`` for ``--write-fixed``),
and an ``evidence["verification"]`` that says what was tried. A finding's fix comes first, then
its alternatives in the order the evidence ranked them, while the time budget lasts. The
user's script is never modified; the copies live in a temporary folder.
"""

from __future__ import annotations

import ast
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from convlint.analyzers import rules as R
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.report.findings import Finding, ScriptReport
from convlint.analyzers.scripts import edits as E

OPT_KEYS = {
    "learning_rate": ("lr", "learning_rate"),
    "momentum": ("momentum",),
    "epsilon": ("eps", "epsilon"),
    "weight_decay": ("weight_decay",),
    "betas": ("betas",),
    "beta_1": ("beta_1",),
    "beta_2": ("beta_2",),
}
_KV = re.compile(
    r"\b(learning_rate|momentum|epsilon|weight_decay|batch_size|betas|beta_1|beta_2)\s+(\S+|\(.*?\))\s*→\s*"
    r"(\([^)]*\)|[\w.\-+]+)"
)
_UNITS = re.compile(r"output units (\d+) → (\d+)")
_LOSS = re.compile(r"\bloss (\w+) → (\w+)")


# -- edits
# ------------------------------------------------------------------------------------------
def _calls_at(tree: ast.AST, line: int | None) -> list[ast.Call]:
    if not line:
        return []
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and n.lineno <= line <= (n.end_lineno or n.lineno)
    ]


def _attr_calls(tree: ast.AST, attr: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == attr
    ]


def _stmt_of(tree: ast.AST, node: ast.AST) -> tuple[list, ast.stmt] | None:
    """The block (list of statements) and the statement holding ``node``."""
    for parent in ast.walk(tree):
        for name in ("body", "orelse", "finalbody"):
            block = getattr(parent, name, None)
            if isinstance(block, list):
                for st in block:
                    if (
                        isinstance(st, ast.stmt)
                        and any(n is node for n in ast.walk(st))
                        and not any(
                            isinstance(c, ast.stmt) and any(n is node for n in ast.walk(c))
                            for c in ast.iter_child_nodes(st)
                        )
                    ):
                        return block, st
    return None


def _name_of(expr: ast.expr) -> str:
    return ast.unparse(expr)


def edits_for(finding: Finding, fix: str, text: str, meta_lines: dict) -> list[E.TextEdit]:
    """Source edits that carry out ``fix`` (a finding's fix or one of its alternatives); [] when
    the fix cannot be written as an edit (a data transform, a change of architecture)."""
    tree = ast.parse(text)
    ed = E.Editor(text, tree)
    out: list[E.TextEdit] = []
    kind = (finding.evidence.get("fix_edit") or {}).get("kind") if fix == _fix(finding) else None
    if kind == "insert-zero-grad" or kind == "move-zero-grad":
        bw = _attr_calls(tree, "backward")
        st = _attr_calls(tree, "step")
        if not bw or not st:
            return []
        opt = _name_of(st[0].func.value)  # type: ignore[attr-defined]
        if kind == "move-zero-grad":
            for z in _attr_calls(tree, "zero_grad"):
                if bw[0].lineno < z.lineno < st[0].lineno:
                    loc = _stmt_of(tree, z)
                    if loc:
                        out.append(ed.delete_statement(loc[1]))
        loc = _stmt_of(tree, bw[0])
        return [*out, ed.insert_line_before(loc[1], f"{opt}.zero_grad()")] if loc else []
    if kind == "optimizer-params":
        for c in _calls_at(tree, meta_lines.get("optimizer")):
            if c.args and isinstance(c.args[0], ast.Call):
                base = c.args[0].func
                while isinstance(base, (ast.Attribute, ast.Subscript, ast.Call)):
                    base = base.value if not isinstance(base, ast.Call) else base.func
                if isinstance(base, ast.Name):
                    return [ed.replace(c.args[0], f"{base.id}.parameters()")]
        return []
    if kind == "drop-softmax":
        for c in _calls_at(tree, finding.location.line):
            if isinstance(c.func, ast.Attribute) and c.func.attr in ("softmax",):
                if (
                    _name_of(c.func.value) in ("torch", "F", "nn.functional", "torch.nn.functional")
                    and c.args
                ):
                    return [ed.replace(c, _name_of(c.args[0]))]
                return [ed.replace(c, _name_of(c.func.value))]
        return []
    if kind == "detach":  # x.detach() / x.data inside a module's forward(): keep x in the graph
        for fn in ast.walk(tree):
            if not (isinstance(fn, ast.FunctionDef) and fn.name == "forward"):
                continue
            for n in ast.walk(fn):
                if (
                    isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and n.func.attr == "detach"
                    and not n.args
                ):
                    out.append(ed.replace(n, _name_of(n.func.value)))
                elif isinstance(n, ast.Attribute) and n.attr == "data" and isinstance(
                    n.ctx, ast.Load
                ):
                    out.append(ed.replace(n, _name_of(n.value)))
        return out
    if kind == "drop-module":  # an activation module after the output layer: nn.ReLU() in a list
        classes = set(finding.evidence["fix_edit"].get("classes") or ())
        for c in _calls_at(tree, finding.location.line):
            args = list(c.args)
            if len(args) == 1 and isinstance(args[0], (ast.List, ast.Tuple)):
                args = list(args[0].elts)
            a = args[-1] if len(args) >= 2 else None  # the module after the output layer
            if isinstance(a, ast.Call) and _name_of(a.func).split(".")[-1] in classes:
                return [ed.delete_after(args[-2], a)]
        return []
    if kind == "activation":  # a string activation at the output layer's line
        e = finding.evidence["fix_edit"]
        # innermost call first: the layer's own call, not a Sequential([...]) spanning its line
        calls = sorted(
            _calls_at(tree, finding.location.line),
            key=lambda c: ((c.end_lineno or c.lineno) - c.lineno, -c.col_offset),
        )
        return [
            ed.replace(n, repr(e["new"]))
            for c in calls
            for n in ast.walk(c)
            if isinstance(n, ast.Constant) and n.value == e["old"]
        ][:1]
    if kind == "unfreeze":
        for n in ast.walk(tree):
            if (
                isinstance(n, ast.Assign)
                and isinstance(n.value, ast.Constant)
                and n.value.value is False
                and any(
                    isinstance(t, ast.Attribute) and t.attr in ("requires_grad", "trainable")
                    for t in n.targets
                )
            ):
                out.append(ed.replace(n.value, "True"))
        return out
    m = _UNITS.search(fix)
    if m:
        old, new = int(m.group(1)), int(m.group(2))
        line = (
            finding.location.line
            if finding.rule == R.TRAIN_OUTPUT_WIDTH.code
            else meta_lines.get("output")
        )
        for c in _calls_at(tree, line):
            consts = [
                a
                for a in [*c.args, *(k.value for k in c.keywords)]
                if isinstance(a, ast.Constant) and a.value == old and not isinstance(a.value, bool)
            ]
            if consts:
                return [ed.replace(consts[-1], str(new))]
        return []
    m = _LOSS.search(fix)
    if m:
        return [
            ed.replace(n, repr(m.group(2)))
            for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and n.value == m.group(1)
        ]
    for key, _old, new in _KV.findall(fix):
        line = meta_lines.get("fit" if key == "batch_size" else "optimizer")
        calls = _calls_at(tree, line)
        if not calls:
            continue
        c = (
            max(calls, key=lambda c: c.lineno * 1000 + c.col_offset)
            if key == "batch_size"
            else calls[0]
        )
        names = OPT_KEYS.get(key, (key,))
        kw = next((k for k in c.keywords if k.arg in names), None)
        if kw is not None:
            out.append(ed.replace(kw.value, new))
        elif key == "learning_rate" and len(c.args) >= 2:  # torch: SGD(params, 0.1)
            out.append(ed.replace(c.args[1], new))
        else:
            torch_style = any(
                isinstance(c.func, ast.Attribute) and "optim" in _name_of(c.func.value) for _ in [0]
            )
            out.append(ed.set_keyword(c, names[0] if torch_style else names[-1], new))
    return out


def _fix(f: Finding) -> str | None:
    return f.repair.description if f.repair else None


def candidates(f: Finding) -> list[str]:
    """The finding's fix, then its alternatives in the order the evidence ranked them."""
    out = [_fix(f)] if _fix(f) else []
    out += [
        a["fix"]
        for a in f.evidence.get("alternatives") or []
        if isinstance(a, dict) and a.get("fix")
    ]
    return [x for x in out if x]


# -- the reruns
# ---------------------------------------------------------------------------------------
def summary(rep: ScriptReport) -> dict:
    t = (rep.extra or {}).get("training") or {}
    return {k: t.get(k) for k in ("loss_last", "accuracy_last", "steps_recorded")} | {
        "verdict": rep.verdict
    }


def improved(before: dict, after: dict) -> bool:
    """The metric improved: a higher final accuracy where both runs have one, else a lower final
    loss; a run that now trains at all improves on one that recorded nothing."""
    if not before.get("steps_recorded"):
        return bool(after.get("steps_recorded"))
    a0, a1 = before.get("accuracy_last"), after.get("accuracy_last")
    if a0 is not None and a1 is not None:
        return a1 > a0 + 0.01
    l0, l1 = before.get("loss_last"), after.get("loss_last")
    return l0 is not None and l1 is not None and l1 < 0.98 * l0


def verify(
    rep: ScriptReport,
    script: str,
    run: Callable[[str, float], ScriptReport],
    budget: float,
    write_fixed: str | None = None,
    progress: Callable | None = None,
) -> ScriptReport:
    """Try the fixes of ``rep``'s error findings on copies of ``script``; ``run(path, timeout)``
    reruns train-check on a copy (same sandbox and limits)."""
    progress = progress or (lambda m: None)
    src = Path(script)
    if src.suffix != ".py":
        progress("train-check: --verify-fix rewrites Python scripts (.py) only; not verified")
        return rep
    if write_fixed and Path(write_fixed).resolve() == src.resolve():
        raise ConvlintError(
            f"--write-fixed {write_fixed}: that is the script itself; name a new file",
            rule=R.BAD_ARGUMENTS.code,
        )
    text = src.read_text(encoding="utf-8")
    meta = (rep.extra or {}).get("training", {}).get("sites") or {}
    before = summary(rep)
    deadline = time.monotonic() + budget
    out, written = [], False
    with tempfile.TemporaryDirectory(prefix="convlint-verify-") as tmp:
        for f in rep.findings:
            if f.severity != "error" or not f.repair or f.rule in (R.TRAIN_SCRIPT_FAILED.code,):
                out.append(f)
                continue
            tried: list = []
            for fix in candidates(f):
                left = deadline - time.monotonic()
                if left < 5:
                    tried.append({"fix": fix, "result": "not tried: the --verify-budget ran out"})
                    break
                try:
                    eds = edits_for(f, fix, text, meta)
                    new_text = E.apply(text, eds) if eds else None
                except (ValueError, SyntaxError) as e:
                    new_text, eds = None, []
                    tried.append({"fix": fix, "result": f"not applied: {e}"})
                    continue
                if not new_text or new_text == text:
                    tried.append({"fix": fix, "result": "not tried: no source edit carries it out"})
                    continue
                copy = Path(tmp) / f"fix{len(tried)}_{src.name}"
                copy.write_text(new_text, encoding="utf-8")
                progress(f"train-check: verifying {f.rule}: {fix}")
                after_rep = run(str(copy), left)
                after = summary(after_rep)
                gone = (
                    f.rule not in {g.rule for g in after_rep.findings}
                    and after_rep.verdict != "crash"
                )
                ok = gone and improved(before, after)
                tried.append(
                    {
                        "fix": fix,
                        "result": "verified"
                        if ok
                        else ("the symptom persists" if not gone else "the metric did not improve"),
                        "after": after,
                    }
                )
                if ok:
                    output = None
                    if write_fixed and not written:
                        Path(write_fixed).write_text(new_text, encoding="utf-8")
                        output, written = write_fixed, True
                    f = f.with_(
                        repair=replace(
                            f.repair,
                            description=fix,
                            verified=True,
                            output=output,
                            metrics_after=after,
                            edits=tuple(e.to_dict(script) for e in eds),
                        )
                    )
                    break
            if tried:
                f = f.with_(evidence={**f.evidence, "verification": tried})
            out.append(f)
    return ScriptReport(rep.script, rep.verdict, tuple(out), kind=rep.kind, extra=rep.extra)
