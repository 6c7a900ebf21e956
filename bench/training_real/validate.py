"""Run every buggy/fixed pair plainly (no convlint) and check that the buggy program trains badly
and the fixed one well, by the case's own metric (the RESULT line: accuracy, or R^2 for a
regression; NaN counts as bad). Writes VALIDATION.md. Usage: python validate.py [-j 2]"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-j", type=int, default=2)
    ap.add_argument("cases", nargs="*")
    args = ap.parse_args()
    names = args.cases or list(CASES)
    jobs = [(n, kind) for n in names for kind in ("buggy", "fixed")]
    res: dict[tuple[str, str], float] = {}
    with cf.ThreadPoolExecutor(args.j) as ex:
        futs = {ex.submit(run, HERE / kind / f"{n}.py"): (n, kind) for n, kind in jobs}
        for f in cf.as_completed(futs):
            res[futs[f]] = f.result()
            print(f"{futs[f][0]:<20} {futs[f][1]:<6} {res[futs[f]]:.3f}", flush=True)
    rows, ok = [], 0
    for n in names:
        b, f, good = res[(n, "buggy")], res[(n, "fixed")], CASES[n]["good"]
        sep = (math.isnan(b) or b < good) and f >= good
        ok += sep
        rows.append(f"| {n} | {b:.3f} | {f:.3f} | >= {good} | {'yes' if sep else 'NO'} |")
    text = "\n".join(
        [
            "# Validation of the real-bug training cases",
            "",
            f"Command: `.venv/bin/python bench/training_real/validate.py -j {args.j}` "
            f"({time.strftime('%Y-%m-%d', time.gmtime())}). Each program runs plainly, without convlint;",
            "the metric is the script's RESULT line (training accuracy, or R^2 for a regression; nan:",
            "the loss diverged). A pair separates when the buggy one stays below the case's threshold",
            "and the fixed one reaches it.",
            "",
            f"**{ok}/{len(names)} pairs separate.**",
            "",
            "| case | buggy | fixed | trains well when | separates |",
            "|---|---|---|---|---|",
            *rows,
            "",
        ]
    )
    if not args.cases:
        (HERE / "VALIDATION.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
