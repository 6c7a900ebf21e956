"""Score `convlint train-check` on the real-bug cases the way DeepLocalize and DeepDiagnosis do.

Each buggy program and its fixed twin runs through the real CLI, as a user runs it:
`convlint train-check SCRIPT --allow-exec --format json` (plus `--verify-fix` when the installed
train-check offers it). Per case:
- detect: the buggy program's verdict is `faulty`;
- localize: the top finding (first error, else first warning) names what the patch changes: its
  line is a line the patch edits, or its layer or hyperparameter is the case's expected one;
- right fix: the top finding's proposed fix (repair description, else message) names the change
  the patch makes (the case's fix keywords), and does not leave a value unchanged (`a → a`);
- fix verified: the top finding's repair has `verified: true` (only with --verify-fix);
- false alarm: the fixed twin's verdict is not `healthy`.
Writes results.json and the "Training checks on real bugs (issue 24)" section of bench/RESULTS.md
after every case (named cases, or --keep, merge into the results already there), and prints a
progress line per program and the totals.
Usage: python run.py [-j 2] [--keep] [case ...]; python run.py --render"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import pathlib
import re
import subprocess
import sys
import time

from cases import CASES, HERE

CLI = [sys.executable, "-m", "convlint", "train-check"]


def verify_fix_supported() -> bool:
    p = subprocess.run([*CLI, "--help"], capture_output=True, text=True)
    return "--verify-fix" in p.stdout


def check(path: pathlib.Path, verify: bool, timeout: int) -> dict:
    cmd = [*CLI, str(path), "--allow-exec", "--format", "json", "--timeout", str(timeout)]
    if verify:
        cmd.append("--verify-fix")
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * 3, cwd=HERE)
        report = json.loads(p.stdout)
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as e:
        report = {"verdict": "error", "findings": [], "error": str(e)[-300:]}
    report["seconds"] = round(time.time() - t0, 1)
    return report


def top_finding(report: dict) -> dict | None:
    for sev in ("error", "warning"):
        for f in report.get("findings", []):
            if f.get("severity") == sev:
                return f
    return None


def patched_lines(name: str) -> set[int]:
    text = (HERE / "buggy" / f"{name}.py").read_text()
    lines = set()
    for old, _ in CASES[name]["patch"]:
        start = text.index(old)
        first = text.count("\n", 0, start) + 1
        lines.update(range(first, first + old.count("\n") + 1))
    return lines


def score(name: str, buggy: dict, fixed: dict, verify: bool) -> dict:
    case, top = CASES[name], top_finding(buggy)
    localized = fix_ok = verified = False
    if top is not None:
        line = (top.get("location") or {}).get("line")
        where = set(case["where"])
        localized = (
            line in patched_lines(name)
            or top.get("layer") in where
            or top.get("hyperparameter") in where
        )
        repair = top.get("repair") or {}
        text = (repair.get("description") or top.get("message") or "").lower()
        noop = any(
            a.strip() == b.strip()
            for a, b in re.findall(r"([\w.\-]+)\s*(?:→|->)\s*([\w.\-]+)", text)
        )
        fix_ok = any(k in text for k in case["fix"]) and not noop
        verified = verify and repair.get("verified") is True
    return {
        "case": name,
        "framework": "keras" if name.startswith("k_") else "pytorch",
        "origin": case["origin"],
        "patch": case["change"],
        "detected": buggy.get("verdict") == "faulty",
        "localized": localized,
        "right_fix": fix_ok,
        "fix_verified": verified,
        "false_alarm": fixed.get("verdict") != "healthy",
        "buggy_verdict": buggy.get("verdict"),
        "fixed_verdict": fixed.get("verdict"),
        "top_finding": None
        if top is None
        else {k: top.get(k) for k in ("rule", "layer", "hyperparameter", "message")}
        | {
            "line": (top.get("location") or {}).get("line"),
            "fix": (top.get("repair") or {}).get("description"),
        },
        "seconds": buggy.get("seconds", 0) + fixed.get("seconds", 0),
    }


SECTION = "## Training checks on real bugs (issue 24)"
PUBLISHED = [
    ("DeepLocalize (ICSE 2021), its 40 bugs", "34/40", "21/40", "n/a", "n/a"),
    ("DeepDiagnosis (ICSE 2022), its 53 bugs", "46/53", "34/53", "28/53", "n/a"),
]


def render(out: dict) -> str:
    """The RESULTS.md section for a results.json."""
    n, t, yes = out["cases"], out["totals"], {True: "yes", False: "-"}
    fixv = f"{t['fix_verified']}/{n}" if out["verify_fix"] else "not run"
    of = out.get("of_cases", n)
    partial = "" if of == n else f"**partial: {n} of the {of} cases scored**; "
    lines = [
        SECTION,
        "",
        f"Command: `{out['command']}` (on {out['date']}; {partial}{out['keras']} Keras and "
        f"{out['pytorch']} PyTorch cases, each a real buggy program with its fixed twin, "
        "[bench/training_real/README.md](training_real/README.md); the pairs' validation without "
        "convlint is in [VALIDATION.md](training_real/VALIDATION.md)). Each program goes through "
        "`convlint train-check SCRIPT --allow-exec --format json` as a user runs it.",
        "",
        *([out["note"], ""] if out.get("note") else []),
        "| tool, bugs | detected | localized | right fix | fix verified | false alarms on fixed "
        "twins |",
        "|---|---|---|---|---|---|",
        f"| convlint train-check, these {n} | {t['detected']}/{n} | {t['localized']}/{n} | "
        f"{t['right_fix']}/{n} | {fixv} | {t['false_alarm']}/{n} |",
        *[
            f"| {a} (published) | {b} | {c} | {d} | {e} | not reported |"
            for a, b, c, d, e in PUBLISHED
        ],
        "",
        "The published rows are the papers' own numbers on their own (Keras) benchmarks, not a run "
        "here; they are the scale to read ours against. Localize and right fix are judged on the "
        "top finding only (the scoring is in the README). A pair took "
        f"{sum(r['seconds'] for r in out['per_case']) / max(n, 1):.0f} s on average here (the two "
        "programs' train-check runs, on the shared 2-core machine).",
        "",
        "| case | detected | localized | right fix | fixed twin | top finding on the buggy "
        "program |",
        "|---|---|---|---|---|---|",
    ]
    for r in out["per_case"]:
        top = r["top_finding"] or {}
        desc = (
            (
                f"{top.get('rule')} [{top.get('layer')}] line {top.get('line')}: "
                f"{(top.get('fix') or top.get('message') or '')[:110]}"
            )
            if top
            else "none"
        )
        desc = desc.replace("|", "/").replace("\n", " ")
        lines.append(
            f"| {r['case']} | {yes[r['detected']]} | {yes[r['localized']]} | "
            f"{yes[r['right_fix']]} | {r['fixed_verdict']} | {desc} |"
        )
    return "\n".join(lines) + "\n"


def write_section(text: str) -> None:
    path = HERE.parent / "RESULTS.md"
    old = path.read_text()
    if SECTION in old:
        head, rest = old.split(SECTION, 1)
        tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
        new = head + text + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def summarize(rows: list[dict], verify: bool, jobs: int) -> dict:
    total = {
        k: sum(r[k] for r in rows)
        for k in ("detected", "localized", "right_fix", "fix_verified", "false_alarm")
    }
    return {
        "command": f".venv/bin/python bench/training_real/run.py -j {jobs}",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "cases": len(rows),
        "of_cases": len(CASES),
        "keras": sum(r["framework"] == "keras" for r in rows),
        "pytorch": sum(r["framework"] == "pytorch" for r in rows),
        "verify_fix": verify,
        "totals": total,
        "per_case": rows,
    }


def save(rows: dict[str, dict], verify: bool, jobs: int) -> dict:
    """results.json and the RESULTS.md section, over every case scored so far (kept in CASES
    order)."""
    out = summarize([rows[n] for n in CASES if n in rows], verify, jobs)
    old = HERE / "results.json"
    if old.exists():  # a note on how the table was produced (kept across resumed runs)
        note = json.loads(old.read_text()).get("note")
        if note:
            out["note"] = note
    (HERE / "results.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    write_section(render(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--timeout", type=int, default=600, help="seconds per train-check run")
    ap.add_argument(
        "--render",
        action="store_true",
        help="only rewrite the RESULTS.md section from results.json",
    )
    ap.add_argument(
        "--keep",
        action="store_true",
        help="keep the cases already in results.json and run only the others",
    )
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    path = HERE / "results.json"
    if args.render:
        write_section(render(json.loads(path.read_text())))
        return
    verify = verify_fix_supported()
    rows: dict[str, dict] = {}
    if (args.keep or args.cases) and path.exists():
        old = json.loads(path.read_text())
        if old.get("verify_fix") == verify:
            rows = {r["case"]: r for r in old["per_case"] if r["case"] in CASES}
    names = args.cases or [n for n in CASES if not (args.keep and n in rows)]
    reports: dict[tuple[str, str], dict] = {}
    with cf.ThreadPoolExecutor(args.j) as ex:
        futs = {
            ex.submit(check, HERE / kind / f"{n}.py", verify, args.timeout): (n, kind)
            for n in names
            for kind in ("buggy", "fixed")
        }
        for i, f in enumerate(cf.as_completed(futs), 1):
            n, kind = futs[f]
            reports[(n, kind)] = r = f.result()
            print(
                f"[{i}/{len(futs)}] {n} {kind}: {r.get('verdict')} ({r['seconds']} s)", flush=True
            )
            if (n, "buggy") in reports and (n, "fixed") in reports:
                rows[n] = score(n, reports[(n, "buggy")], reports[(n, "fixed")], verify)
                out = save(rows, verify, args.j)
    out = save(rows, verify, args.j)
    t, n = out["totals"], out["cases"]
    print(
        f"detected {t['detected']}/{n}, localized {t['localized']}/{n}, right fix "
        f"{t['right_fix']}/{n}"
        + (f", fix verified {t['fix_verified']}/{n}" if verify else "")
        + f", false alarms on fixed twins {t['false_alarm']}/{n}"
    )


if __name__ == "__main__":
    main()
