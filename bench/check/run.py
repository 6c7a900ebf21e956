"""Benchmark: an unchanged rerun of ``convlint check`` against its first run (the content-hash
cache). Builds a throwaway project whose config lists fixture model pairs, runs ``convlint
check`` twice as CI would (a fresh process each time), and writes the ``check`` section of
bench/RESULTS.md.

    python bench/check/run.py [--jobs 2]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))

from results import write_section  # noqa: E402

M = ROOT / "fixtures" / "models"
PAIRS = [
    ("mobilenet.keras", "mobilenet.tflite"),
    ("resnet.pt2", "resnet.torch.tampered.onnx"),
    ("inception.keras", "inception.tf2onnx.onnx"),
    ("mobilenet.keras", "mobilenet.dynint8.tflite"),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        pairs = ",\n  ".join(f"{{source = '{M / s}', target = '{M / t}'}}" for s, t in PAIRS)
        (Path(d) / "convlint.toml").write_text(f"pairs = [\n  {pairs}\n]\ncache-dir = '.cache'\n")
        for s in ("tflite_optimize.py", "layout.py", "torch_not_eval.py"):
            (Path(d) / s).write_text((ROOT / "fixtures" / "scripts" / s).read_text())
        times = []
        for _ in range(2):
            t = time.perf_counter()
            p = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "convlint",
                    "check",
                    "--jobs",
                    str(a.jobs),
                    "--format",
                    "json",
                ],
                cwd=d,
                capture_output=True,
                text=True,
            )
            times.append(time.perf_counter() - t)
            assert p.returncode in (0, 1), p.stderr[-2000:]
    first, second = times
    body = "\n".join(
        [
            "## `convlint check`: unchanged rerun (`bench/check`)",
            "",
            f"Command: `python bench/check/run.py --jobs {a.jobs}`",
            "",
            f"A project with {len(PAIRS)} model pairs (fixtures, TVM cross-check on) and 3 "
            f"scripts, checked twice, each time in a fresh process as CI runs it (the TVM "
            f"compile cache in `$CONVLINT_CACHE_DIR` as found: a cold TVM cache makes the first "
            f"run slower and the ratio smaller).",
            "",
            "| run | seconds |",
            "|---|---|",
            f"| first (empty check cache) | {first:.2f} |",
            f"| second (nothing changed) | {second:.2f} |",
            f"| ratio second / first | {second / first:.3f} |",
            "",
            f"Target: under 0.10: {'met' if second / first < 0.10 else 'NOT met'}.",
        ]
    )
    print(body)
    if not a.no_write:
        write_section("check", body)


if __name__ == "__main__":
    main()
