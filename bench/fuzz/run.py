"""``make bench-fuzz``: 10,000 mutated files per model format through the loaders
(bench/fuzz/harness.py, one process per format), written to the "fuzz" section of
bench/RESULTS.md with the command.

    python bench/fuzz/run.py [--n 10000] [--formats onnx,tflite,...]

Each format's row is also kept in bench/fuzz/results.json with the command that produced it, so a
run of
some formats replaces only their rows and the table keeps the others (each with its own command and
date).
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

FORMATS = ["onnx", "tflite", "keras", "h5", "pt2", "torchscript", "pte"]
ROWS = HERE / "results.json"


def render(rows: dict) -> str:
    lines = [
        "## Loader fuzzing (`make bench-fuzz`)",
        "",
        "Mutations (bit flips, truncation, overwritten, inserted and zeroed bytes) of a real "
        "fixture model per format; a case passes when the file loads or is refused with "
        "convlint's own error. Each row was produced by the command beside it (rows are kept per "
        "format in bench/fuzz/results.json).",
        "",
        "| format | base file | cases | loaded | refused | uncaught / crash / hang | s | date | "
        "command |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fmt in FORMATS:
        d = rows.get(fmt)
        if d is None:
            continue
        lines.append(
            f"| {d['format']} | {d.get('base', '')} | {d.get('cases')} | {d.get('loaded')} | "
            f"{d.get('refused')} | {len(d['failures'])} | {d['wall']:.0f} | {d.get('date', '')} "
            f"| `{d.get('command', '')}` |"
        )
    if "h5" in rows:
        lines += [
            "",
            "The .h5 row takes longest because every .h5 file is first read completely by a "
            "child process with a timeout (analyzers/models/hdf5_check.py, the guard against the "
            "HDF5 hang this fuzzer found).",
        ]
    missing = [f for f in FORMATS if f not in rows]
    if missing:
        lines += ["", f"Not run yet: {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rows = json.loads(ROWS.read_text()) if ROWS.exists() else {}
    command = f"python bench/fuzz/run.py --n {a.n} --seed {a.seed} --formats {a.formats}"
    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in a.formats.split(","):
            out = Path(tmp) / f"{fmt}.json"
            t0 = time.perf_counter()
            p = subprocess.run(
                [
                    sys.executable,
                    str(HERE / "harness.py"),
                    fmt,
                    str(a.n),
                    "--seed",
                    str(a.seed),
                    "--out",
                    str(out),
                ],
                capture_output=True,
                text=True,
            )
            if out.exists():
                d = json.loads(out.read_text())
            else:
                d = {"format": fmt, "cases": None, "loaded": None, "refused": None,
                     "failures": [{"error": f"process died (rc {p.returncode}): crash or hang"}]}
            d["wall"] = time.perf_counter() - t0
            d["date"] = time.strftime("%Y-%m-%d")
            d["command"] = command
            d["failures"] = d["failures"][:20]  # the reproducing files of the first few are enough
            failed = failed or bool(d["failures"])
            rows[fmt] = d
            print(
                f"{fmt}: {d.get('cases')} cases, {len(d['failures'])} failures, {d['wall']:.0f} s",
                file=sys.stderr,
            )
            # after each format: a long run keeps what it measured
            ROWS.write_text(json.dumps(rows, indent=1, sort_keys=True) + "\n")
            write_section("fuzz", render(rows))
    print(render(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
