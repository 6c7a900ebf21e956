"""The real-bug benchmark: faults real converters produce, and faithful real conversions.

    python bench/realbugs/run.py [--case SUBSTRING] [--no-write] [--keep DIR]

Each case (cases/*.py, see README.md) builds its source and converts it with the real converter
in a fresh folder, in the environment it names (``main``: this interpreter; another: skipped with
a note unless ``bench/realbugs/.venv-<env>/bin/python`` exists). Then ``convlint diff SOURCE
TARGET --repair --format json`` runs in a subprocess, as a user runs it, and the report is
scored: detected, right source layer, right culprit stage, verified repair, false positives on
clean twins. Results go to bench/RESULTS.md between the ``realbugs`` markers, with this command.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SYMPTOMS = ("CL100", "CL101", "CL110", "CL003")


def load_cases(pattern: str | None) -> list:
    sys.path.insert(0, str(HERE / "cases"))  # their shared _common
    out = []
    for p in sorted((HERE / "cases").glob("*.py")):
        if p.name.startswith("_") or (pattern and pattern not in p.stem):
            continue
        spec = importlib.util.spec_from_file_location(f"realbug_{p.stem}", p)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        out.append((p, mod.CASE))
    return out


# converters that pin other versions than convlint's environment get one of their own, made on
# first use (bench/realbugs/.venv-<env>, gitignored): each a list of pip install argument lists
ENVS = {
    "onnx2torch": [["torch==2.13.0", "onnx", "onnxruntime", "numpy"],
                   ["--no-deps", "onnx2torch==1.5.15"]],
    "torchonnx": [["torch==2.13.0", "onnxscript==0.7.2", "onnx", "onnxruntime", "numpy"]],
    "onnx2tf": [["onnx2tf==1.29.24", "tensorflow==2.19.0", "tf_keras==2.19.0", "onnx==1.19.1",
                 "onnxruntime==1.23.0", "numpy<2", "onnx_graphsurgeon", "sng4onnx", "psutil",
                 "onnxsim==0.4.36"]],
    # litert-torch pins torch<2.15 and brings jax, transformers and the LiteRT converter: only for
    # `trace` of litert_torch.convert (tests/test_traced_converters.py), no realbugs case uses it
    "litert": [["torch==2.13.0", "litert-torch==0.10.0"]],
}


def python_for(env: str) -> str | None:
    """The interpreter of a case's environment, made when missing (None when it cannot be)."""
    if env == "main":
        return sys.executable
    d = HERE / f".venv-{env}"
    py = d / "bin" / "python"
    if not py.exists() and env in ENVS:
        print(f"setting up the {env} environment in {d} ...", flush=True)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(d)], check=True)
            for pkgs in ENVS[env]:
                subprocess.run([str(py), "-m", "pip", "install", "--quiet", *pkgs], check=True,
                               timeout=1800)
        except Exception as e:  # noqa: BLE001 - reported as a skipped case
            print(f"  failed: {e}", flush=True)
            return None
    return str(py) if py.exists() else None


def build(path: Path, env: str, out: Path) -> tuple:
    code = ("import importlib.util, json, sys, pathlib\n"
            f"sys.path.insert(0, {str(path.parent)!r})  # the cases' shared _common\n"
            f"spec = importlib.util.spec_from_file_location('case', {str(path)!r})\n"
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
            f"s, t = m.build(pathlib.Path({str(out)!r}))\n"
            "print(json.dumps([str(s), str(t)]))\n")
    env_vars = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore")
    r = subprocess.run([python_for(env), "-c", code], capture_output=True, text=True, timeout=900,
                       cwd=out, env=env_vars)
    if r.returncode != 0:
        raise RuntimeError((r.stderr or r.stdout).strip().splitlines()[-1][:300])
    return tuple(json.loads(r.stdout.strip().splitlines()[-1]))


def diff(src: str, tgt: str, out: Path, extra: list) -> tuple:
    suffix = Path(tgt).suffix or ".onnx"
    cmd = [str(Path(sys.executable).parent / "convlint"), "diff", src, tgt, "--repair",
           "--output", str(out / f"repaired{suffix}"), "--format", "json", *extra]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    secs = time.perf_counter() - t
    try:
        return json.loads(r.stdout), secs
    except json.JSONDecodeError:
        return {"verdict": "error", "findings": [], "stderr": r.stderr[-400:]}, secs


def culprit(report: dict) -> dict | None:
    """The report's own culprit when it names one, else the first error finding that is not a
    symptom, else the first-divergent-layer finding."""
    loc = report.get("localization") or {}
    if loc.get("culprit"):
        return loc["culprit"]
    errs = [f for f in report.get("findings", []) if f.get("severity") == "error"]
    f = next((f for f in errs if f["rule"] not in SYMPTOMS), None) or next(
        (f for f in errs if f["rule"] == "CL110"), None)
    return None if f is None else {"rule": f["rule"], "stage": f["stage"], "layer": f.get("layer")}


def score(case: dict, report: dict) -> dict:
    findings = report.get("findings", [])
    errors = [f for f in findings if f.get("severity") == "error"]
    c = culprit(report)
    if case["kind"] == "clean":
        return {"fp": report.get("verdict") != "equivalent" or bool(errors),
                "rules": sorted({f["rule"] for f in errors})}
    named = {f.get("layer") for f in errors if f.get("layer")}
    first = next((f.get("layer") for f in errors if f["rule"] in ("CL110", "CL402")), None)
    layer = (c or {}).get("layer") or first
    secs = (report.get("localization") or {}).get("seconds") or {}
    return {
        "check_seconds": report.get("seconds"),
        "search_seconds": (secs.get("localize") or 0) + (secs.get("stage1_and_repair") or 0)
        if secs
        else None,
        "detected": report.get("verdict") in ("divergent", "crash"),
        "layer": layer in case["layer"] or (layer is None and bool(named & set(case["layer"]))),
        "stage": (c or {}).get("stage") == case["stage"],
        "repaired": any((f.get("repair") or {}).get("verified") for f in findings),
        "blames_source": any(
            f["rule"] == "CL010"
            and f.get("severity") == "error"
            and (f.get("evidence") or {}).get("model") == "source"
            for f in findings
        ),
        "reported_layer": layer,
        "reported_stage": (c or {}).get("stage"),
        "rules": sorted({f["rule"] for f in errors}),
    }


def _ratios(rows: list) -> str:
    rs = sorted(r["search_seconds"] / r["check_seconds"] for r in rows
                if r.get("search_seconds") is not None and r.get("check_seconds"))
    if not rs:
        return "n/a"
    return f"median {rs[len(rs) // 2]:.2f}x, max {rs[-1]:.2f}x over {len(rs)} cases"


def table(rows: list) -> str:
    faults = [r for r in rows if r["case"]["kind"] == "fault" and "error" not in r]
    clean = [r for r in rows if r["case"]["kind"] == "clean" and "error" not in r]
    rep = [r for r in faults if r["case"].get("repairable")]

    def frac(n, d):
        return f"{n}/{d} ({100 * n / d:.0f}%)" if d else "0/0"

    lines = [
        "| measure | convlint |",
        "| --- | --- |",
        f"| detected | {frac(sum(r['detected'] for r in faults), len(faults))} |",
        f"| right source layer | {frac(sum(r['layer'] for r in faults), len(faults))} |",
        f"| right culprit stage | {frac(sum(r['stage'] for r in faults), len(faults))} |",
        f"| verified repair (of those a patch or re-conversion can fix) | "
        f"{frac(sum(r['repaired'] for r in rep), len(rep))} |",
        f"| blames the source framework's kernels | {sum(r['blames_source'] for r in faults)} |",
        f"| false positives on clean twins | {frac(sum(r['fp'] for r in clean), len(clean))} |",
        f"| localization, replay and repair search over the differential check's time "
        f"(divergent cases) | {_ratios(faults)} |",
        "",
        "| case | converter | kind | upstream | expected layer / stage | reported layer / stage | "
        "detected | layer | stage | repaired | rules | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        c = r["case"]
        if "error" in r:
            lines.append(f"| {c['id']} | {c['converter']} | {c['kind']} | {c['upstream']} | | "
                         f"not run: {r['error']} | | | | | | |")
            continue
        yn = {True: "yes", False: "no"}
        if c["kind"] == "clean":
            lines.append(f"| {c['id']} | {c['converter']} | clean | {c['upstream']} | - | "
                         f"{'FALSE POSITIVE' if r['fp'] else 'clean'} | | | | | "
                         f"{', '.join(r['rules'])} | {r['seconds']:.0f} |")
            continue
        lines.append(
            f"| {c['id']} | {c['converter']} | fault | {c['upstream']} | {'/'.join(c['layer'])} / "
            f"{c['stage']} | {r['reported_layer']} / {r['reported_stage']} | {yn[r['detected']]} | "
            f"{yn[r['layer']]} | {yn[r['stage']]} | "
            f"{yn[r['repaired']] if c.get('repairable') else 'n/a'} | {', '.join(r['rules'])} | "
            f"{r['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", help="only cases whose file name contains this")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--keep", help="keep the built models in this folder")
    ap.add_argument("--setup", metavar="ENV", choices=sorted(ENVS),
                    help="only build the environment ENV (bench/realbugs/.venv-ENV) and stop; "
                    "tests/test_traced_converters.py runs its converter there")
    args = ap.parse_args()
    if args.setup:
        py = python_for(args.setup)
        print(py or f"the {args.setup} environment could not be built")
        return 0 if py else 1
    rows = []
    with tempfile.TemporaryDirectory(prefix="convlint-realbugs-") as tmp:
        base = Path(args.keep or tmp)
        for path, case in load_cases(args.case):
            out = base / case["id"]
            out.mkdir(parents=True, exist_ok=True)
            row = {"case": case}
            if python_for(case.get("env", "main")) is None:
                row["error"] = f"environment {case['env']!r} not set up"
                rows.append(row)
                print(f"{case['id']}: skipped ({row['error']})", flush=True)
                continue
            try:
                src, tgt = build(path, case.get("env", "main"), out)
            except Exception as e:  # noqa: BLE001 - a case that cannot be built is reported
                row["error"] = f"build failed: {e}"
                rows.append(row)
                print(f"{case['id']}: {row['error']}", flush=True)
                continue
            report, secs = diff(src, tgt, out, case.get("diff_args", []))
            row.update(score(case, report), seconds=secs, verdict=report.get("verdict"))
            rows.append(row)
            print(
                f"{case['id']}: {report.get('verdict')} "
                f"{json.dumps({k: v for k, v in row.items() if k != 'case'}, default=str)}",
                flush=True,
            )
    body = table(rows)
    print(body)
    if not args.no_write and not args.case:
        sys.path.insert(0, str(HERE.parent))
        from results import write_section

        cmd = "python bench/realbugs/run.py"
        write_section(
            "realbugs",
            "## Real converter bugs (`bench/realbugs`)\n\nCommand: `"
            + cmd
            + f"` ({time.strftime('%Y-%m-%d')})\n\n"
            "Faults that real converters produce today (each case cites the upstream "
            "issue or the converter's code; no target is edited by hand) and faithful "
            "real conversions as clean twins; see bench/realbugs/README.md. Scored from "
            "`convlint diff SOURCE TARGET --repair --format json` run as a user runs it.\n\n"
            + body,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
