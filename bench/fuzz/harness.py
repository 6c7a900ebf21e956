"""Fuzz one model loader with mutated bytes of a real model file (hypothesis).

    python bench/fuzz/harness.py FORMAT N [--seed S] [--out JSON]

FORMAT is one of ``onnx``, ``tflite``, ``keras``, ``h5``, ``pt2``, ``torchscript``, ``pte``; the
base
file is the shipped fixture of that format (``pte``: the portable ExecuTorch program
fixtures/generate.py makes, generated first into a temporary folder). Each case flips bits,
truncates, overwrites or inserts bytes,
or (the "resource" family) makes the file declare far more than it holds: a zip member's
uncompressed size in the central directory and local header, an HDF5 dataset of 2^k elements
that is never written, a TFLite buffer stored outside the flatbuffer past the end of the file, an
ONNX initializer whose dims claim 2^k elements. It writes the file and runs
``open_model(path).load()`` and ``input_specs()``. A case passes when the
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
         "h5": "resnet.h5", "pt2": "mobilenet.pt2", "torchscript": "mobilenet.ts.pt",
         "pte": "net.portable.pte"}
GENERATED = {"pte"}  # made by fixtures/generate.py at run time, never committed
HANG_SECONDS = 30


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("format", choices=sorted(BASES))
    ap.add_argument("n", type=int)
    ap.add_argument(
        "--seed", type=int, default=0, help="0: the same cases every run (derandomized)"
    )
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hyp_seed
    from hypothesis import strategies as st

    from convlint.analyzers.errors import ConvlintError, StepFailed
    from convlint.analyzers.models.detect import open_model

    tmp = Path(tempfile.mkdtemp(prefix=f"convlint-fuzz-{a.format}-"))
    base_path = ROOT / "fixtures" / "models" / BASES[a.format]
    if a.format in GENERATED:
        sys.path.insert(0, str(ROOT / "fixtures"))
        from generate import executorch_pairs

        executorch_pairs(tmp / "base")
        base_path = tmp / "base" / BASES[a.format]
    base = base_path.read_bytes()
    case = tmp / f"case{base_path.suffix}"
    keep = Path(a.out + ".case") if a.out else tmp / "last.case"
    stats = {
        "format": a.format,
        "base": base_path.name,
        "cases": 0,
        "loaded": 0,
        "refused": 0,
        "failures": [],
        "kinds": {},
    }
    t0 = time.perf_counter()

    mutation = st.one_of(
        st.tuples(
            st.just("flip"),
            st.lists(
                st.tuples(st.integers(0, len(base) - 1), st.integers(0, 7)), min_size=1, max_size=32
            ),
        ),
        st.tuples(st.just("truncate"), st.integers(0, len(base) - 1)),
        st.tuples(
            st.just("overwrite"), st.integers(0, len(base) - 1), st.binary(min_size=1, max_size=256)
        ),
        st.tuples(
            st.just("insert"), st.integers(0, len(base)), st.binary(min_size=1, max_size=256)
        ),
        st.tuples(st.just("zero"), st.integers(0, len(base) - 1), st.integers(1, 4096)),
        st.tuples(st.just("resource"), st.integers(0, 1 << 30), st.integers(31, 44)),
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
        elif kind == "zero":
            b[m[1]:m[1] + m[2]] = bytes(min(m[2], len(b) - m[1]))
        else:
            return inflate(a.format, base, m[1], m[2], tmp)
        return bytes(b)

    @settings(
        max_examples=a.n,
        derandomize=a.seed == 0,
        database=None,
        deadline=None,
        print_blob=False,
        suppress_health_check=list(HealthCheck),
    )
    @given(mutation)
    def run(m):
        data = mutate(m)
        case.write_bytes(data)
        keep.write_bytes(data)  # a native crash leaves its reproducer behind
        stats["cases"] += 1
        stats["kinds"][m[0]] = stats["kinds"].get(m[0], 0) + 1
        faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
        try:
            r = open_model(str(case)).load()
            r.input_specs()
            stats["loaded"] += 1
            r.close()
        except (ConvlintError, StepFailed):
            stats["refused"] += 1
        except Exception as e:  # noqa: BLE001 - what the fuzzer is looking for
            stats["failures"].append(
                {"mutation": m[0], "error": f"{type(e).__name__}: {str(e)[:300]}"}
            )
        finally:
            faulthandler.cancel_dump_traceback_later()

    if a.seed:
        run = hyp_seed(a.seed)(run)
    run()
    stats["seconds"] = round(time.perf_counter() - t0, 1)
    import resource

    stats["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    text = json.dumps(stats)
    print("FUZZ " + text)
    if a.out:
        Path(a.out).write_text(text)
        keep.unlink(missing_ok=True)
    return 1 if stats["failures"] else 0


def inflate(fmt: str, base: bytes, pick: int, log2: int, tmp: Path) -> bytes:
    """``base`` made to declare about 2**log2 bytes (or elements) that it does not hold."""
    import io
    import struct
    import zipfile

    huge = 1 << log2
    if fmt in ("keras", "pt2", "torchscript"):
        b = bytearray(base)
        with zipfile.ZipFile(io.BytesIO(base)) as z:
            infos = z.infolist()
        info = infos[pick % len(infos)]
        size = min(huge, 0xFFFFFFFE)  # a 32-bit field (no zip64 record to rewrite)
        # the local header's uncompressed size (offset 22) and the central directory's (24)
        struct.pack_into("<I", b, info.header_offset + 22, size)
        for at in _central_entries(base):
            if struct.unpack_from("<I", base, at + 42)[0] == info.header_offset:
                struct.pack_into("<I", b, at + 24, size)
        return bytes(b)
    if fmt == "h5":
        import h5py

        p = tmp / "inflate.h5"
        p.write_bytes(base)
        with h5py.File(p, "a") as f:
            f.create_dataset(f"bomb{pick}", shape=(huge // 4,), dtype="float32", chunks=(1024,),
                             compression="gzip")
        return p.read_bytes()
    if fmt == "pte":  # the extended header's segment size (a u64 at byte 32)
        b = bytearray(base)
        struct.pack_into("<Q", b, 32, huge + pick)
        return bytes(b)
    if fmt == "tflite":
        from convlint.analyzers.repair import tflite_graph as g

        p = tmp / "inflate.tflite"
        p.write_bytes(base)
        m = g.load(str(p))
        full = [b for b in m.buffers if b.data is not None and len(b.data)]
        buf = full[pick % len(full)]
        buf.data, buf.offset, buf.size = None, len(base) + pick, huge
        return g.dump(m)
    import onnx  # an initializer whose dims claim 2**log2 elements over its few real bytes

    m = onnx.load_from_string(base)
    init = m.graph.initializer[pick % len(m.graph.initializer)]
    del init.dims[:]
    init.dims.extend([huge])
    return m.SerializeToString()


def _central_entries(data: bytes) -> list:
    """Offsets of the central directory's file headers."""
    out, at = [], data.find(b"PK\x01\x02")
    while at >= 0:
        out.append(at)
        at = data.find(b"PK\x01\x02", at + 4)
    return out


if __name__ == "__main__":
    sys.exit(main())
