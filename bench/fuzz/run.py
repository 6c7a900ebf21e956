"""``make bench-fuzz``: 10,000 mutated files per model format through the loaders
(bench/fuzz/harness.py, one process per format), written to the "fuzz" section of
bench/RESULTS.md with the command.

    python bench/fuzz/run.py [--n 10000] [--formats onnx,tflite,...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
from results import write_section  # noqa: E402

FORMATS = ["onnx", "tflite", "keras", "h5", "pt2", "torchscript"]


def render(rows: list, a) -> str:
    lines = ["## Loader fuzzing (`make bench-fuzz`)", "",
             f"Command: `python bench/fuzz/run.py --n {a.n} --seed {a.seed} --formats {a.formats}`, "
             f"{time.strftime('%Y-%m-%d')}. Mutations (bit flips, truncation, overwritten, inserted and zeroed bytes) "
             "of a real fixture model per format; a case passes when the file loads or is refused with convlint's "
             "own error.", "",
             "| format | base file | cases | loaded | refused | uncaught / crash / hang | s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for d in rows:
        lines.append(f"| {d['format']} | {d.get('base', '')} | {d.get('cases')} | {d.get('loaded')} | {d.get('refused')} | "
                     f"{len(d['failures'])} | {d['wall']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in a.formats.split(","):
            out = Path(tmp) / f"{fmt}.json"
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, str(HERE / "harness.py"), fmt, str(a.n), "--seed", str(a.seed),
                                "--out", str(out)], capture_output=True, text=True)
            if out.exists():
                d = json.loads(out.read_text())
            else:
                d = {"format": fmt, "cases": None, "loaded": None, "refused": None,
                     "failures": [{"error": f"process died (rc {p.returncode}): crash or hang"}]}
            d["wall"] = time.perf_counter() - t0
            rows.append(d)
            print(f"{fmt}: {d.get('cases')} cases, {len(d['failures'])} failures, {d['wall']:.0f} s", file=sys.stderr)
            write_section("fuzz", render(rows, a))  # after each format: a long run keeps what it measured
    print(render(rows, a))
    return 1 if any(d["failures"] for d in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
