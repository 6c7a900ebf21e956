"""Benchmark: static analysis of conversion scripts.

Times ``analyze_source`` on a 500-line script (the fixture scripts concatenated, with every
rule's pattern in it) against a peer run in the same process: CPython's own ``compile()`` of the
same text, the floor any AST-based linter pays. Also checks that no heavy framework was imported.
Writes the ``scripts`` section of bench/RESULTS.md.

    python bench/scripts/run.py [--lines 500] [--repeat 200]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from results import write_section  # noqa: E402


def long_script(n: int) -> str:
    parts = sorted(
        p for p in (ROOT / "fixtures" / "scripts").glob("*.py") if ".clean." not in p.name
    )
    lines: list[str] = []
    while len(lines) < n:
        for p in parts:
            lines += p.read_text().splitlines()
    return "\n".join(lines[:n]) + "\n"


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=500)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    t0 = time.perf_counter()
    from convlint.analyzers.scripts import analyze_source

    import_s = time.perf_counter() - t0
    text = long_script(a.lines)
    report = analyze_source(text, str(ROOT / "fixtures" / "scripts" / "long.py"))  # warm
    ours = timed(lambda: analyze_source(text, "long.py"), a.repeat)
    peer = timed(lambda: compile(text, "long.py", "exec"), a.repeat)
    heavy = sorted(
        m
        for m in ("tensorflow", "torch", "tvm", "keras", "onnxruntime", "onnx")
        if m in sys.modules
    )
    p50, p95 = statistics.median(ours), sorted(ours)[int(0.95 * len(ours))]
    peer50 = statistics.median(peer)
    body = "\n".join([
        "## Static script analysis (`bench/scripts`)", "",
        f"Command: `python bench/scripts/run.py --lines {a.lines} --repeat {a.repeat}`", "",
        f"A {a.lines}-line script (the faulty fixture scripts concatenated: "
        f"{len(report.findings)} findings), analysed {a.repeat} times in one process.", "",
        "| measure | value |", "|---|---|",
        f"| convlint `analyze_source` p50 | {p50 * 1e3:.2f} ms |",
        f"| convlint `analyze_source` p95 | {p95 * 1e3:.2f} ms |",
        f"| peer: CPython `compile()` p50 | {peer50 * 1e3:.2f} ms |",
        f"| ratio convlint / compile | {p50 / peer50:.2f}x |",
        f"| import of `convlint.analyzers.scripts` | {import_s * 1e3:.0f} ms |",
        f"| heavy frameworks imported | {', '.join(heavy) or 'none'} |",
        "", f"Target: under 20 ms a 500-line script, no TF/torch/TVM import: "
        f"{'met' if p50 < 0.02 and not heavy else 'NOT met'}.",
    ])
    print(body)
    if not a.no_write:
        write_section("scripts", body)


if __name__ == "__main__":
    main()
