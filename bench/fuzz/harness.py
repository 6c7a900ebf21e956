"""Fuzz one model loader with mutated bytes of a real model file (hypothesis).

    python bench/fuzz/harness.py FORMAT N [--seed S] [--out JSON]

FORMAT is one of ``onnx``, ``tflite``, ``keras``, ``h5``, ``pt2``, ``torchscript``; the base file is
the shipped fixture of that format. Each case flips bits, truncates, overwrites or inserts bytes,
writes the file and runs ``open_model(path).load()`` and ``input_specs()``. A case passes when the
loader either loads the model or raises convlint's own error (a clear ``error``/``crash`` report
upstream). Anything else (an uncaught exception) is a failure; a native crash or a hang (30 s)
ends the process, and the case that did it is left in ``<out>.case`` to reproduce. Prints and
writes a JSON summary: cases, loaded, refused, failures.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BASES = {"onnx": "mobilenet.torch.onnx", "tflite": "mobilenet.tflite", "keras": "mobilenet.keras",
         "h5": "resnet.h5", "pt2": "mobilenet.pt2", "torchscript": "mobilenet.ts.pt"}
HANG_SECONDS = 30


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("format", choices=sorted(BASES))
    ap.add_argument("n", type=int)
    ap.add_argument("--seed", type=int, default=0, help="0: the same cases every run (derandomized)")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hyp_seed
    from hypothesis import strategies as st

    from convlint.analyzers.errors import ConvlintError, StepFailed
    from convlint.analyzers.models.detect import open_model

    base_path = ROOT / "fixtures" / "models" / BASES[a.format]
    base = base_path.read_bytes()
    tmp = Path(tempfile.mkdtemp(prefix=f"convlint-fuzz-{a.format}-"))
    case = tmp / f"case{base_path.suffix}"
    keep = Path(a.out + ".case") if a.out else tmp / "last.case"
    stats = {"format": a.format, "base": base_path.name, "cases": 0, "loaded": 0, "refused": 0, "failures": []}
    t0 = time.perf_counter()

    mutation = st.one_of(
        st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 7)),
                                              min_size=1, max_size=32)),
        st.tuples(st.just("truncate"), st.integers(0, len(base) - 1)),
        st.tuples(st.just("overwrite"), st.integers(0, len(base) - 1), st.binary(min_size=1, max_size=256)),
        st.tuples(st.just("insert"), st.integers(0, len(base)), st.binary(min_size=1, max_size=256)),
        st.tuples(st.just("zero"), st.integers(0, len(base) - 1), st.integers(1, 4096)),
    )

    def mutate(m) -> bytes:
        b = bytearray(base)
        kind = m[0]
        if kind == "flip":
            for pos, bit in m[1]:
                b[pos] ^= 1 << bit
        elif kind == "truncate":
            b = b[: m[1]]
        elif kind == "overwrite":
            b[m[1]:m[1] + len(m[2])] = m[2]
        elif kind == "insert":
            b[m[1]:m[1]] = m[2]
        else:
            b[m[1]:m[1] + m[2]] = bytes(min(m[2], len(b) - m[1]))
        return bytes(b)

    @settings(max_examples=a.n, derandomize=a.seed == 0, database=None, deadline=None, print_blob=False,
              suppress_health_check=list(HealthCheck))
    @given(mutation)
    def run(m):
        data = mutate(m)
        case.write_bytes(data)
        keep.write_bytes(data)  # a native crash leaves its reproducer behind
        stats["cases"] += 1
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        try:
            r = open_model(str(case)).load()
            r.input_specs()
            stats["loaded"] += 1
            r.close()
        except (ConvlintError, StepFailed):
            stats["refused"] += 1
        except Exception as e:  # noqa: BLE001 - what the fuzzer is looking for
            stats["failures"].append({"mutation": m[0], "error": f"{type(e).__name__}: {str(e)[:300]}"})
        finally:
            faulthandler.cancel_dump_traceback_later()

    if a.seed:
        run = hyp_seed(a.seed)(run)
    run()
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(stats)
    print("FUZZ " + text)
    if a.out:
        Path(a.out).write_text(text)
        keep.unlink(missing_ok=True)
    return 1 if stats["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
