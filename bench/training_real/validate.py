"""Run every buggy/fixed pair plainly (no convlint) and check that the buggy program trains badly
and the fixed one well, by the case's own metric (the RESULT line: accuracy, or R^2 for a
regression; NaN counts as bad). Writes VALIDATION.md and validation.json after every pair.
Usage: python validate.py [-j 2] [--keep] [case ...]"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import math
import pathlib
import subprocess
import sys
import time

from cases import CASES, HERE


def run(path: pathlib.Path, timeout: float = 600) -> float:
    """The RESULT value the script prints (NaN when it crashes or prints none)."""
    try:
        p = subprocess.run(
            [sys.executable, str(path)], capture_output=True, text=True, timeout=timeout, cwd=HERE
        )
    except subprocess.TimeoutExpired:
        return math.nan
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("RESULT"):
            return float(line.split()[1])
    return math.nan


def write(res: dict[str, list[float]], jobs: int) -> str:
    """VALIDATION.md (and validation.json) over every pair measured so far, in CASES order."""
    (HERE / "validation.json").write_text(json.dumps(res, indent=1) + "\n")
    rows, ok, names = [], 0, [n for n in CASES if n in res]
    for n in names:
        (b, f), good = res[n], CASES[n]["good"]
        sep = (math.isnan(b) or b < good) and f >= good
        ok += sep
        rows.append(f"| {n} | {b:.3f} | {f:.3f} | >= {good} | {'yes' if sep else 'NO'} |")
    partial = "" if len(names) == len(CASES) else f" ({len(names)} of the {len(CASES)} cases run)"
    text = "\n".join(
        [
            "# Validation of the real-bug training cases",
            "",
            f"Command: `.venv/bin/python bench/training_real/validate.py -j {jobs}` "
            f"({time.strftime('%Y-%m-%d', time.gmtime())}). Each program runs plainly, without "
            "convlint; the metric is the script's RESULT line (training accuracy, or R^2 for a "
            "regression; nan: the loss diverged). A pair separates when the buggy one stays below "
            "the case's threshold and the fixed one reaches it.",
            "",
            f"**{ok}/{len(names)} pairs separate{partial}.**",
            "",
            "| case | buggy | fixed | trains well when | separates |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    (HERE / "VALIDATION.md").write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("--keep", action="store_true", help="keep the pairs already measured")
    ap.add_argument("cases", nargs="*", help="only these (merged into what was measured)")
    args = ap.parse_args()
    path = HERE / "validation.json"
    res: dict[str, list[float]] = {}
    if (args.keep or args.cases) and path.exists():
        res = {n: v for n, v in json.loads(path.read_text()).items() if n in CASES}
    names = args.cases or [n for n in CASES if not (args.keep and n in res)]
    got: dict[tuple[str, str], float] = {}
    with cf.ThreadPoolExecutor(args.j) as ex:
        futs = {
            ex.submit(run, HERE / k / f"{n}.py"): (n, k) for n in names for k in ("buggy", "fixed")
        }
        for f in cf.as_completed(futs):
            (n, kind), got[futs[f]] = futs[f], f.result()
            print(f"{n:<20} {kind:<6} {got[(n, kind)]:.3f}", flush=True)
            if (n, "buggy") in got and (n, "fixed") in got:
                res[n] = [got[(n, "buggy")], got[(n, "fixed")]]
                write(res, args.j)
    print(write(res, args.j))


if __name__ == "__main__":
    main()
