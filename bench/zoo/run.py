"""Benchmark (`make bench-zoo`): `convlint check` over a generated model zoo (bench/zoo/zoo.py,
at least 30 pairs over four converters) with the local process pool and with Ray, 1 and 2 workers
each, every Ray run beside its pool peer; then a baseline round trip in which one tampered
target (fixtures/faults.py) must be the only regression. Writes the ``zoo`` section of
bench/RESULTS.md.

    python bench/zoo/run.py [--workers 1 2] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ZOO = HERE / ".zoo"
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT / "fixtures"))

from results import write_section  # noqa: E402

TAMPERED = {
    "keras": ("keras/mobilenet/model.onnx", "corrupted-tensor"),
    "torch": ("torch/resnet_like/model.onnx", "corrupted-tensor"),
}
CONFIG = ["--config", str(ZOO / "convlint.toml")]  # or the subset's (--only)


def _cpu() -> float:
    """CPU seconds (user + system) of this script's finished child processes and theirs: a check
    run's driver, its pool workers or its local Ray (raylet, GCS, every task's worker)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def check(*args: str) -> tuple[float, subprocess.CompletedProcess]:
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "convlint", "check", "--no-tvm", "--format", "json", *CONFIG, *args],
        cwd=ZOO,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    wall = time.perf_counter() - t
    assert p.returncode in (0, 1), p.stderr[-3000:]
    return wall, p


def verdicts(p: subprocess.CompletedProcess) -> list:
    return [
        (r["source"]["path"], r["target"]["path"], r["verdict"])
        for r in json.loads(p.stdout)["reports"]
        if r["kind"] == "conversion"
    ]


def timed_runs(workers: list) -> tuple[dict, list]:
    """{(executor, workers): (wall s, CPU s, load average before, after)}, each run with an empty
    check cache, pool then Ray at each worker count; every run must give the same verdicts for
    the same pairs."""
    times, seen = {}, None
    for w in workers:
        for ex in ("local", "ray"):
            shutil.rmtree(ZOO / ".cache", ignore_errors=True)
            load0, cpu0 = os.getloadavg()[0], _cpu()
            wall, p = check("--executor", ex, "-j", str(w))
            cpu, load1 = _cpu() - cpu0, os.getloadavg()[0]
            v = verdicts(p)
            assert seen is None or v == seen, f"{ex} -j {w} disagrees with the previous run"
            seen, times[(ex, w)] = v, (wall, cpu, load0, load1)
            print(
                f"{ex:5} -j {w}: {wall:7.1f} s wall, {cpu:7.1f} s CPU ({len(v)} pairs, "
                f"load {load0:.1f} -> {load1:.1f})",
                flush=True,
            )
    return times, seen


def baseline_round_trip(tampered: tuple) -> dict:
    """Store a baseline (served from the cache of the last run), tamper one target, compare: the
    tampered pair must be the only regression. The target is restored afterwards."""
    import faults

    base = ZOO / "zoo.baseline.json"
    base.unlink(missing_ok=True)
    check("--baseline", base.name, "--update-baseline", "-j", "2")
    target = ZOO / tampered[0]
    keep = target.with_suffix(".clean.onnx")
    shutil.copy(target, keep)
    try:
        faults.inject(str(keep), tampered[1], str(target))
        wall, p = check("--baseline", base.name, "-j", "2", "-v")
    finally:
        shutil.move(keep, target)
    doc = json.loads(p.stdout)
    regs = [r["pair"] for r in doc["baseline"]["regressions"]]
    assert p.returncode == 1 and len(regs) == 1 and tampered[0] in regs[0], (p.returncode, regs)
    assert not doc["baseline"]["improvements"]
    return {
        "regressions": regs,
        "unchanged": len(doc["baseline"]["unchanged"]),
        "seconds": wall,
        "rechecked": p.stderr.count(": divergent") + p.stderr.count(": equivalent"),
    }


def main() -> None:
    import zoo

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", choices=sorted(TAMPERED), help="check only this half of the zoo")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    n = zoo.make(ZOO)
    tampered = TAMPERED[a.only or "keras"]
    if a.only:  # the config's two glob lines of that half
        src = {"keras": "model.keras", "torch": "model.pt2"}[a.only]
        lines = [ln.strip(" [],") for ln in zoo.CONFIG.splitlines() if f"/{src}" in ln]
        (ZOO / "subset.toml").write_text(f'pairs = [{", ".join(lines)}]\ncache-dir = ".cache"\n')
        CONFIG[1] = str(ZOO / "subset.toml")
        n = 2 * sum(1 for d in (ZOO / a.only).iterdir() if d.is_dir())
    print(f"{n} pairs", flush=True)
    times, v = timed_runs(a.workers)
    rt = baseline_round_trip(tampered)
    nk, nt = (sum(1 for d in (ZOO / h).iterdir() if d.is_dir()) for h in ("keras", "torch"))
    counts = {k: sum(1 for *_, x in v if x == k) for k in sorted({x for *_, x in v})}
    rows = [
        "| workers | pool wall (s) | Ray wall (s) | Ray / pool | Ray overhead a pair, wall (s) "
        "| pool CPU (s) | Ray CPU (s) | Ray overhead a pair, CPU (s) | load (pool; Ray) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for w in a.workers:
        (pw, pc, p0, p1), (rw, rc, r0, r1) = times[("local", w)], times[("ray", w)]
        rows.append(
            f"| {w} | {pw:.1f} | {rw:.1f} | {rw / pw:.2f} | {(rw - pw) * w / n:+.2f} | {pc:.0f} "
            f"| {rc:.0f} | {(rc - pc) / n:+.2f} | {p0:.1f}->{p1:.1f}; {r0:.1f}->{r1:.1f} |"
        )
    w0, w1 = a.workers[0], a.workers[-1]
    speed = {ex: times[(ex, w0)][0] / times[(ex, w1)][0] for ex in ("local", "ray")}
    cpu = {ex: times[(ex, w1)][1] / n for ex in ("local", "ray")}  # CPU-seconds per pair
    wsec = {ex: times[(ex, w1)][0] * w1 / n for ex in ("local", "ray")}  # worker-seconds per pair
    body = "\n".join(
        [
            "## Model zoo (issue 22)",
            "",
            f"Command: `python bench/zoo/run.py --workers {' '.join(map(str, a.workers))}"
            + (f" --only {a.only}`" if a.only else "` (`make bench-zoo`)"),
            "",
            (
                f"Measured on the {a.only} half of the zoo only ({n} pairs, `--only {a.only}`). "
                if a.only
                else ""
            )
            + f"A zoo of {n} pairs generated by bench/zoo/zoo.py (random weights, 64x64 inputs): "
            f"{nk} keras.applications architectures converted by tf2onnx and TFLiteConverter, "
            f"{nt} torchvision-like definitions in plain torch (.pt2) converted by "
            "torch.onnx.export and OpenVINO; listed by four glob lines in the zoo's "
            "convlint.toml, each pair on 8 random "
            "inputs (`num-inputs = 8`: a Keras source runs each input eagerly, so at the default "
            "32 the inputs, not the executor, dominate). Every run: `convlint check --no-tvm "
            "--executor E -j W` with an empty check cache, in a fresh process (a local Ray of W "
            "CPUs started by the run: its start-up is in the time); the four runs one after the "
            f"other, pool then Ray at each worker count. Verdicts: {counts}, identical in every "
            "run. CPU is the user + system time of the run's whole process tree (driver, pool "
            "workers, or raylet, GCS and every task's worker), which the load of the other jobs "
            "on this shared 2-core machine inflates far less than the wall time; load is the "
            "1-minute load average before and after each run.",
            "",
            *rows,
            "",
            f"Speed-up from {w0} to {w1} workers (wall): process pool {speed['local']:.2f}x, "
            f"Ray {speed['ray']:.2f}x.",
            "",
            f"Cost per pair at {w1} workers: process pool {cpu['local']:.1f} CPU-seconds "
            f"({wsec['local']:.1f} worker-seconds of wall), Ray {cpu['ray']:.1f} CPU-seconds "
            f"({wsec['ray']:.1f} worker-seconds). Each Ray task runs in a fresh worker process "
            "(max_calls=1) and imports its framework again, which a pool worker does once. "
            f"Projected to 1,000 pairs: {1000 * cpu['local'] / 3600:.1f} CPU-hours with the pool, "
            f"{1000 * cpu['ray'] / 3600:.1f} with Ray; on a Ray cluster of 64 CPUs about "
            f"{1000 * cpu['ray'] / 64 / 60:.0f} minutes.",
            "",
            f"Baseline round trip: a baseline written from the last run (`--update-baseline`, "
            f"served from the cache), then `{tampered[0]}` tampered ({tampered[1]}, "
            "fixtures/faults.py) and the zoo checked against the baseline: "
            f"{rt['rechecked']} pair re-checked (the rest from the cache) in "
            f"{rt['seconds']:.1f} s; "
            f"regressions: {', '.join(rt['regressions'])} (the only one); {rt['unchanged']} "
            "unchanged; exit 1.",
        ]
    )
    print(body)
    if not a.no_write:
        write_section("zoo", body)


if __name__ == "__main__":
    main()
