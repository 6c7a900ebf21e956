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
    """{(executor, workers): (wall s, load average before, after)}, each run with an empty check
    cache, pool then Ray at each worker count; every run must give the same verdicts for the same
    pairs. (The CPU time of a Ray run cannot be read like the pool's: Ray's raylet and workers
    are not reaped by the run, so getrusage misses them.)"""
    times, seen = {}, None
    for w in workers:
        for ex in ("local", "ray"):
            shutil.rmtree(ZOO / ".cache", ignore_errors=True)
            load0 = os.getloadavg()[0]
            wall, p = check("--executor", ex, "-j", str(w))
            load1 = os.getloadavg()[0]
            v = verdicts(p)
            assert seen is None or v == seen, f"{ex} -j {w} disagrees with the previous run"
            seen, times[(ex, w)] = v, (wall, load0, load1)
            print(
                f"{ex:5} -j {w}: {wall:7.1f} s ({len(v)} pairs, load {load0:.1f} -> {load1:.1f})",
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


def render(times, workers, n, kinds, counts, tampered, rt, only=None) -> str:
    """The RESULTS.md section from the runs' ``times`` and the round trip ``rt``."""
    rows = [
        "| workers | process pool (s) | Ray (s) | Ray / pool | Ray overhead a pair "
        "(worker-s) | load (pool; Ray) |",
        "|---|---|---|---|---|---|",
    ]
    for w in workers:
        (pw, p0, p1), (rw, r0, r1) = times[("local", w)], times[("ray", w)]
        rows.append(
            f"| {w} | {pw:.1f} | {rw:.1f} | {rw / pw:.2f} | {(rw - pw) * w / n:+.1f} "
            f"| {p0:.0f}->{p1:.0f}; {r0:.0f}->{r1:.0f} |"
        )
    w0, w1 = workers[0], workers[-1]
    speed = {ex: times[(ex, w0)][0] / times[(ex, w1)][0] for ex in ("local", "ray")}
    wsec = {ex: times[(ex, w1)][0] * w1 / n for ex in ("local", "ray")}  # worker-seconds a pair
    hours = {ex: 1000 * wsec[ex] / 3600 for ex in wsec}
    return "\n".join(
        [
            "## Model zoo (issue 22)",
            "",
            f"Command: `python bench/zoo/run.py --workers {' '.join(map(str, workers))}"
            + (f" --only {only}`" if only else "` (`make bench-zoo`)"),
            "",
            (f"Measured on the {only} half of the zoo only ({n} pairs). " if only else "")
            + f"A zoo of {n} pairs generated by bench/zoo/zoo.py (random weights, 64x64 inputs): "
            f"{kinds[0]} keras.applications architectures converted by tf2onnx and "
            f"TFLiteConverter, {kinds[1]} torchvision-like definitions in plain torch (.pt2) "
            "converted by torch.onnx.export and OpenVINO (four converters, four "
            "conversions); listed by four glob lines in the zoo's convlint.toml, each pair on 8 "
            "random inputs (`num-inputs = 8`: a Keras source runs each input eagerly, so at the "
            "default 32 the inputs, not the executor, dominate). Every run: `convlint check "
            "--no-tvm --executor E -j W` with an empty check cache, in a fresh process (a local "
            "Ray of W CPUs started by the run: its start-up is in the time); the four runs one "
            f"after the other, pool then Ray at each worker count. Verdicts: {counts}, identical "
            "in every run. Load is the 1-minute load average before and after each run: this "
            "2-core machine was shared with other jobs throughout, so wall times are several "
            "times what a quiet machine gives and their ratios carry that noise.",
            "",
            *rows,
            "",
            f"Speed-up from {w0} to {w1} workers: process pool {speed['local']:.2f}x, "
            f"Ray {speed['ray']:.2f}x.",
            "",
            f"Cost per pair at {w1} workers: process pool {wsec['local']:.1f} worker-seconds, "
            f"Ray {wsec['ray']:.1f} (wall time x workers / pairs, on the loaded machine). Each "
            "Ray task runs in a fresh worker process (max_calls=1) and imports its framework "
            "again, which a pool worker does once. Projected to 1,000 pairs: "
            f"{hours['local']:.1f} worker-hours with the pool, {hours['ray']:.1f} with Ray; on a "
            f"Ray cluster of 64 CPUs about {60 * hours['ray'] / 64:.0f} minutes.",
            "",
            "Baseline round trip: a baseline written from the last run (`--update-baseline`, "
            f"served from the cache), then `{tampered[0]}` tampered ({tampered[1]}, "
            "fixtures/faults.py) and the zoo checked against the baseline: "
            f"{rt['rechecked']} pair re-checked (the rest from the cache) in {rt['seconds']:.1f} "
            f"s; regressions: {', '.join(rt['regressions'])} (the only one); {rt['unchanged']} "
            "unchanged; exit 1.",
        ]
    )


def main() -> None:
    import zoo

    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--only", choices=sorted(TAMPERED), help="check only this half of the zoo")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    n = zoo.make(ZOO)
    tampered = TAMPERED[a.only or "torch"]
    if a.only:  # the config's two glob lines of that half
        src = {"keras": "model.keras", "torch": "model.pt2"}[a.only]
        lines = [ln.strip(" [],") for ln in zoo.CONFIG.splitlines() if f"/{src}" in ln]
        (ZOO / "subset.toml").write_text(f'pairs = [{", ".join(lines)}]\ncache-dir = ".cache"\n')
        CONFIG[1] = str(ZOO / "subset.toml")
        n = 2 * sum(1 for d in (ZOO / a.only).iterdir() if d.is_dir())
    print(f"{n} pairs", flush=True)
    for name in zoo.constant_models(ZOO):  # see bench/RESULTS.md: a known weakness of this zoo
        print(f"warning: {name}: the output does not depend on the input", flush=True)
    times, v = timed_runs(a.workers)
    rt = baseline_round_trip(tampered)
    nk, nt = (sum(1 for d in (ZOO / h).iterdir() if d.is_dir()) for h in ("keras", "torch"))
    counts = {k: sum(1 for *_, x in v if x == k) for k in sorted({x for *_, x in v})}
    body = render(times, a.workers, n, (nk, nt), counts, tampered, rt, a.only)
    print(body)
    if not a.no_write:
        write_section("zoo", body)


if __name__ == "__main__":
    main()
