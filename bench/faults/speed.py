"""Issue 23's diff speed: ``convlint diff`` of a MobileNetV2-size pair against a plain script that
loads both models in their own runtimes and runs the same 32 inputs (the floor for the same
work), each a whole process, measured in the same run with a warm TVM compile cache.

Rows: the clean pair (Keras MobileNetV2 -> float TFLite), ``convlint diff`` against the plain
compare; the faulty pair (-> TFLite Optimize.DEFAULT, int8 weights) with ``--repair`` (check,
localization, stage 1's re-conversions, repair, verification) against the same plain compare.
Writes the ``speed`` section of bench/RESULTS.md.

    python bench/faults/speed.py [--cases bench/faults/.cases] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

from results import write_section  # noqa: E402

N = 32
PLAIN = """
import sys, numpy as np, keras, tensorflow as tf
m = keras.models.load_model(sys.argv[1])
it = tf.lite.Interpreter(model_path=sys.argv[2])
it.allocate_tensors()
i, o = it.get_input_details()[0]["index"], it.get_output_details()[0]["index"]
rng = np.random.default_rng(0)
worst = 0.0
for _ in range(int(sys.argv[3])):
    x = rng.standard_normal((1, 224, 224, 3)).astype(np.float32)
    a = np.asarray(m(x, training=False))
    it.set_tensor(i, x)
    it.invoke()
    worst = max(worst, float(np.abs(a - it.get_tensor(o)).max()))
print(worst)
"""


def pair(cases: Path) -> tuple:
    """The MobileNetV2-size source, its float TFLite (clean) and its Optimize.DEFAULT TFLite
    (faulty)."""
    from run import mobilenetv2_pair

    src, faulty = mobilenetv2_pair(cases)
    clean = cases / "mobilenetv2b.tflite"
    if not clean.exists():
        import keras
        import tensorflow as tf

        clean.write_bytes(
            tf.lite.TFLiteConverter.from_keras_model(keras.models.load_model(src)).convert()
        )
    return src, clean, faulty


def timed(cmd: list) -> tuple[float, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=3600)
    return time.perf_counter() - t0, p.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=str(HERE / ".cases"))
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    cases = Path(a.cases)
    cases.mkdir(parents=True, exist_ok=True)
    src, clean, faulty = pair(cases)
    convlint = [sys.executable, "-m", "convlint"]
    diff = [*convlint, "diff", str(src), str(clean), "--num-inputs", str(N), "--format", "json"]
    timed(diff)  # warms the TVM compile cache (source and float target)
    plain, _ = timed([sys.executable, "-c", PLAIN, str(src), str(clean), str(N)])
    t_clean, out = timed(diff)
    r_clean = json.loads(out)
    out_dir = cases / "speed-out"
    out_dir.mkdir(exist_ok=True)
    rep = out_dir / "mobilenetv2b.repaired.tflite"
    rep.unlink(missing_ok=True)
    fcmd = [
        *convlint,
        "diff",
        str(src),
        str(faulty),
        "--num-inputs",
        str(N),
        "--repair",
        "--output",
        str(rep),
        "--format",
        "json",
    ]
    t_faulty, out = timed(fcmd)
    r_faulty = json.loads(out)
    loc = (r_faulty.get("extra") or {}).get("localization") or {}
    rows = {
        "plain": plain,
        "clean": t_clean,
        "clean_verdict": r_clean["verdict"],
        "clean_runs": r_clean.get("extra", {}).get("runs"),
        "faulty": t_faulty,
        "faulty_verdict": r_faulty["verdict"],
        "faulty_check": r_faulty.get("extra", {}).get("seconds"),
        "faulty_localize": loc.get("seconds"),
    }
    print(json.dumps(rows, indent=1, default=str))
    if a.no_write:
        return
    cmd = "python bench/faults/speed.py"
    runs = rows["clean_runs"] or {}
    secs = {k: (v or {}).get("seconds") for k, v in runs.items()}
    body = f"""## Speed (issue 23)

Command: `{cmd}` (2-core machine type shared with up to 8 other processes; whole processes, wall
clock, the TVM compile cache warm). Peer: a plain script (bench/faults/speed.py `PLAIN`) that
loads the Keras source and the TFLite target in their own runtimes and runs the same {N} random
inputs, measured in the same run.

| measure | convlint | peer in the same run | ratio | target |
| --- | --- | --- | --- | --- |
| clean MobileNetV2-size pair (Keras -> float TFLite; verdict {rows["clean_verdict"]}): `convlint diff --num-inputs {N}` | {t_clean:.1f} s | plain two-model compare: {plain:.1f} s | {t_clean / plain:.2f} | <= 1.5 |
| faulty MobileNetV2-size pair (Keras -> TFLite Optimize.DEFAULT; verdict {rows["faulty_verdict"]}): `convlint diff --num-inputs {N} --repair` (check {rows["faulty_check"]} s; localization and stage 1 + repair {rows["faulty_localize"]}) | {t_faulty:.1f} s | the same plain compare: {plain:.1f} s | {t_faulty / plain:.2f} | <= 3 |

Where the clean pair's time goes (seconds per model and leg, from the report): {json.dumps(secs)}.
What bounds it: each model runs twice, natively and through TVM (the verdict's cross-check on
the same {N} inputs; it is not cut to hit the number), `import tvm` imports torch (tvm_ffi), and
TVM's llvm kernels run these models several times slower than TFLite's XNNPACK and TensorFlow's
oneDNN. Re-conversions are checked natively, with TVM only for the final verification, and a
module is compiled once per process (the in-memory and on-disk compile cache).
"""
    write_section("speed", body)


if __name__ == "__main__":
    main()
