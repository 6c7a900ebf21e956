"""Baselines: ``convlint check --baseline FILE`` compares a run's pairs with a stored run.

A model zoo always has pairs known to diverge; what a CI run must catch is a pair that got
worse. Each pair (keyed by ``source -> target``, paths relative to the config's folder) is
recorded as its classification (the verdict), two key metrics and an error signature (rule,
stage and layer of the finding that explains the failure). Comparing lists regressions (the
classification got worse, or a still-failing pair now fails for another reason), improvements
and unchanged pairs; with a baseline, only a regression fails the run.

The file is meant to be committed and reviewed: sorted keys, one line per pair, metrics rounded
to 4 significant digits and no timestamp or version, so a rerun that changes nothing rewrites
the same bytes and a change is a one-line diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from convlint.analyzers import rules as R
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.report.findings import ConversionReport

FORMAT = "convlint-baseline"  # the marker key of the file, with its format version
VERSION = 1
# how bad each classification is: a move up is a regression, a move down an improvement
RANK = {"equivalent": 0, "divergent": 1, "crash": 2, "error": 3}
METRICS = ("max_abs", "top1_agreement")


def pair_key(source: str, target: str, root: str | Path) -> str:
    """``source -> target`` relative to ``root`` (the config's folder), with forward slashes,
    so the same baseline works from any checkout and any working directory."""
    def rel(p: str) -> str:
        return Path(os.path.relpath(os.path.abspath(p), os.path.abspath(root))).as_posix()

    return f"{rel(source)} -> {rel(target)}"


def entry(report: ConversionReport) -> dict:
    """What the baseline keeps of one pair's report."""
    e: dict[str, Any] = {"classification": report.verdict, "signature": signature(report)}
    for k in METRICS:
        v = report.metrics.get(k)
        number = isinstance(v, (int, float)) and not isinstance(v, bool)
        e[k] = float(f"{v:.4g}") if number else None
    return e


def signature(report: ConversionReport) -> dict | None:
    """Why the pair fails: the localization's culprit when there is one, else the first error
    finding; None for a pair that does not fail."""
    if report.verdict == "equivalent":
        return None
    c = (report.extra.get("localization") or {}).get("culprit")
    if isinstance(c, dict) and c.get("rule"):
        return {"rule": c.get("rule"), "stage": c.get("stage"), "layer": c.get("layer")}
    f = next((f for f in report.findings if f.severity == "error"), None)
    return None if f is None else {"rule": f.rule, "stage": f.stage, "layer": f.layer}


def load(path: str, *, missing_ok: bool = False) -> dict[str, dict] | None:
    """The pairs of a baseline file, by key. A missing file is None with ``missing_ok`` (the
    first ``--update-baseline``), else an error; a file that is not a baseline is an error."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return None
        raise _bad(path, "no such file", "create it with --update-baseline") from None
    except (OSError, UnicodeDecodeError) as e:
        raise _bad(path, f"cannot read it: {getattr(e, 'strerror', None) or e}") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise _bad(path, f"not valid JSON: {e}") from None
    pairs = doc.get("pairs") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get(FORMAT) != VERSION or not isinstance(pairs, dict):
        raise _bad(path, f'expected {{"{FORMAT}": {VERSION}, "pairs": {{...}}}}')
    for key, e in pairs.items():
        if not isinstance(e, dict) or e.get("classification") not in RANK:
            raise _bad(path, f"pairs[{key!r}]: expected a classification, one of {', '.join(RANK)}")
        sig = e.get("signature")
        if sig is not None and not isinstance(sig, dict):
            raise _bad(path, f"pairs[{key!r}].signature: expected null or {{rule, stage, layer}}")
    return pairs


def _bad(path: str, msg: str, hint: str | None = None) -> ConvlintError:
    return ConvlintError(f"baseline {path}: {msg}", rule=R.BAD_ARGUMENTS.code,
                         hint=hint or "regenerate it with --update-baseline")


def compare(old: dict[str, dict], now: dict[str, dict], skipped: list[str]) -> dict:
    """``{regressions, improvements, unchanged, removed}``: lists of ``{pair, change, was,
    now}``. ``now`` holds the pairs checked, ``skipped`` those not checked (``--changed-since``;
    they count as unchanged). A pair the baseline lacks is a regression when it fails (a broken
    model added to the zoo must not pass unnoticed), else unchanged."""
    out: dict[str, list] = {"regressions": [], "improvements": [], "unchanged": [], "removed": []}
    for key in sorted(now):
        was, cur = old.get(key), now[key]
        change, where = _change(was, cur)
        out[where].append({"pair": key, "change": change, "was": was, "now": cur})
    for key in sorted(skipped):
        was = old.get(key)
        out["unchanged"].append({"pair": key, "change": "skipped", "was": was, "now": was})
    out["removed"] = [{"pair": k, "change": "removed", "was": old[k], "now": None}
                      for k in sorted(old) if k not in now and k not in skipped]
    return out


def _change(was: dict | None, now: dict) -> tuple[str, str]:
    """(what changed, which list it goes to)."""
    failing = now["classification"] != "equivalent"
    if was is None:
        return "new", "regressions" if failing else "unchanged"
    a, b = RANK[was["classification"]], RANK[now["classification"]]
    if b > a:
        return "worse", "regressions"
    if b < a:
        return "better", "improvements"
    if failing and _sig(was.get("signature")) != _sig(now.get("signature")):
        return "signature", "regressions"
    return "same", "unchanged"


def _sig(s: dict | None) -> tuple | None:
    return None if s is None else (s.get("rule"), s.get("stage"), s.get("layer"))


def describe(item: dict) -> str:
    """One line of the text report: ``pair: was -> now``."""
    def one(e: dict | None) -> str:
        if e is None:
            return "(none)"
        s = e.get("signature")
        if not s:
            return e["classification"]
        layer = f" [{s['layer']}]" if s.get("layer") else ""
        return f"{e['classification']} ({s.get('rule')} {s.get('stage')}{layer})"

    if item["change"] == "new":
        return f"{item['pair']}: new pair, {one(item['now'])}"
    if item["change"] == "skipped":
        return f"{item['pair']}: not checked (no file changed), {one(item['was'])}"
    if item["change"] == "removed":
        return f"{item['pair']}: no longer in the config (was {one(item['was'])})"
    return f"{item['pair']}: {one(item['was'])} -> {one(item['now'])}"


def merged(old: dict[str, dict] | None, now: dict[str, dict], skipped: list[str]) -> dict:
    """The baseline to write: the pairs checked as they are now, the skipped ones as they were
    (a skipped pair the old baseline lacks has nothing to record). Pairs gone from the config
    are dropped."""
    old = old or {}
    out = {k: old[k] for k in skipped if k in old}
    out.update(now)
    return out


def dumps(pairs: dict[str, dict]) -> str:
    """Valid JSON, one pair per line, keys sorted: a changed pair is a one-line diff."""
    lines = [f"    {json.dumps(k)}: {json.dumps(pairs[k], sort_keys=True)}" for k in sorted(pairs)]
    body = "{\n" + ",\n".join(lines) + "\n  }" if lines else "{}"
    return f'{{\n  "{FORMAT}": {VERSION},\n  "pairs": {body}\n}}\n'


def save(path: str, pairs: dict[str, dict], protect: tuple = ()) -> None:
    """Write the baseline atomically, never over an input, a model, a script or a config."""
    from convlint.analyzers.report.io import write_new_file

    write_new_file(path, dumps(pairs), protect=protect, report=True)
