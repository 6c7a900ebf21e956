"""Issue 23's diff speed: ``convlint diff`` of a MobileNetV2-size pair against a plain script that
loads both models in their own runtimes and runs the same 32 inputs (the floor for the same
work), each a whole process, measured in the same run with a warm TVM compile cache.

Rows: the clean pair (Keras MobileNetV2 -> float TFLite), ``convlint diff`` against the plain
compare; the faulty pair (-> TFLite Optimize.DEFAULT, int8 weights) with ``--repair`` (check,
localization, stage 1's re-conversions, repair, verification) against the same plain compare.
Each process is timed by wall clock and by CPU time (user + system of the child, from
``wait4``): on a shared machine CPU time is the steadier figure. convlint and the peers run
alternately, ``--repeats`` times each, and the best of each is kept. Two peers: ``PLAIN`` calls
the Keras model eagerly (the issue's definition of the plain compare), ``PLAIN_GRAPH`` calls it
through ``tf.function`` as ``model.predict`` and convlint's runner do (the stronger floor).
Writes the ``speed`` section of bench/RESULTS.md.

    python bench/faults/speed.py [--repeats 3] [--no-faulty] [--cases DIR] [--no-write]
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
# the same, with the Keras call traced once into a graph (as model.predict runs it)
PLAIN_GRAPH = PLAIN.replace(
    "worst = 0.0\n", "worst = 0.0\nf = tf.function(lambda x: m(x, training=False))\n"
).replace("np.asarray(m(x, training=False))", "np.asarray(f(x))")


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


def timed(cmd: list) -> tuple[float, float, str]:
    """``(wall s, CPU s of the child, stdout)`` of one whole process."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=env)
    assert p.stdout is not None
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    wall, cpu = time.perf_counter() - t0, ru.ru_utime + ru.ru_stime
    what = "convlint " + " ".join(cmd[3:4] + cmd[5:6]) if "convlint" in cmd else (
        "PLAIN_GRAPH" if any("tf.function" in c for c in cmd) else "PLAIN")
    print(f"{what}: {wall:.1f} s wall, {cpu:.1f} s CPU, load {os.getloadavg()[0]:.1f}",
          file=sys.stderr, flush=True)  # progress: a long run stopped early still says something
    return wall, cpu, out


def best(rows: list) -> dict:
    """The best (lowest wall) of repeated ``timed`` rows, with the CPU time of that run and the
    lowest CPU time of all."""
    w = min(rows, key=lambda r: r[0])
    return {"wall": w[0], "cpu": w[1], "cpu_min": min(r[1] for r in rows),
            "walls": [round(r[0], 1) for r in rows], "cpus": [round(r[1], 1) for r in rows]}


def legs(report: dict) -> dict:
    """Per model and leg seconds, and the check's own seconds, from a JSON report."""
    runs = report.get("runs") or (report.get("extra") or {}).get("runs") or {}
    out = {f"{k}/{leg}": v for k, r in runs.items() for leg, v in (r.get("seconds") or {}).items()}
    out["check"] = report.get("seconds") or (report.get("extra") or {}).get("seconds")
    loc = report.get("localization") or (report.get("extra") or {}).get("localization") or {}
    out.update({f"localization/{k}": v for k, v in (loc.get("seconds") or {}).items()})
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=str(HERE / ".cases"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-faulty", action="store_true")
    ap.add_argument("--only-faulty", action="store_true",
                    help="the faulty pair alone, with PLAIN before and after it (no section)")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    cases = Path(a.cases)
    cases.mkdir(parents=True, exist_ok=True)
    src, clean, faulty = pair(cases)
    py = sys.executable
    convlint = [py, "-m", "convlint"]
    diff = [*convlint, "diff", str(src), str(clean), "--num-inputs", str(N), "--format", "json"]
    load0 = os.getloadavg()
    if a.only_faulty:
        print(json.dumps(faulty_rows(convlint, src, faulty, cases, py), default=str), flush=True)
        return
    timed(diff)  # warms the TVM compile cache (source and float target)
    plain, graph, conv, reports = [], [], [], []
    for _ in range(a.repeats):  # alternately, so that each sees the same load
        plain.append(timed([py, "-c", PLAIN, str(src), str(clean), str(N)]))
        graph.append(timed([py, "-c", PLAIN_GRAPH, str(src), str(clean), str(N)]))
        conv.append(timed(diff))
        reports.append(json.loads(conv[-1][2]))
    rows: dict = {"plain": best(plain), "plain_graph": best(graph), "clean": best(conv),
                  "clean_verdict": reports[0]["verdict"]}
    i_best = min(range(len(conv)), key=lambda i: conv[i][0])
    rows["clean_legs"] = legs(reports[i_best])
    print(json.dumps(rows, default=str), file=sys.stderr, flush=True)
    if not a.no_faulty:
        rows.update(faulty_rows(convlint, src, faulty, cases, py))
    rows["load"] = [load0, os.getloadavg()]
    print(json.dumps(rows, indent=1, default=str))
    if not a.no_write:
        write_section("speed", section(rows, a))


def faulty_rows(convlint: list, src, faulty, cases: Path, py: str) -> dict:
    """The faulty pair's full pipeline (one run), with the plain compare before and after it."""
    clean = cases / "mobilenetv2b.tflite"
    before = timed([py, "-c", PLAIN, str(src), str(clean), str(N)])
    out_dir = cases / "speed-out"
    out_dir.mkdir(exist_ok=True)
    rep = out_dir / "mobilenetv2b.repaired.tflite"
    rep.unlink(missing_ok=True)
    fcmd = [*convlint, "diff", str(src), str(faulty), "--num-inputs", str(N), "--repair",
            "--output", str(rep), "--format", "json"]
    f = timed(fcmd)
    rf = json.loads(f[2])
    after = timed([py, "-c", PLAIN, str(src), str(clean), str(N)])
    return {"faulty": best([f]), "faulty_verdict": rf["verdict"], "faulty_legs": legs(rf),
            "faulty_repaired": [x.get("repair") for x in rf.get("findings", [])
                                if x.get("repair")][:1],
            "plain_around_faulty": best([before, after])}


def section(rows: dict, a) -> str:
    p, g, c = rows["plain"], rows["plain_graph"], rows["clean"]
    cmd = f"python bench/faults/speed.py --repeats {a.repeats}"
    cmd += " --no-faulty" if a.no_faulty else ""
    lines = [
        "## Speed (issue 23)",
        "",
        f"Command: `{cmd}` (whole processes; convlint and the peers alternately, best of "
        f"{a.repeats} by wall clock; CPU time is the child's user + system time; TVM compile "
        "cache warm). Load average (1, 5, 15 min) at the start "
        f"{', '.join(f'{x:.1f}' for x in rows['load'][0])} and at the end "
        f"{', '.join(f'{x:.1f}' for x in rows['load'][1])} on 2 cores, shared with other helpers.",
        "",
        "| measure | convlint | peer in the same run | ratio wall (CPU) | target |",
        "| --- | --- | --- | --- | --- |",
        f"| clean MobileNetV2-size pair (Keras -> float TFLite; verdict {rows['clean_verdict']}): "
        f"`convlint diff --num-inputs {N}` | {c['wall']:.1f} s wall, {c['cpu']:.1f} s CPU | "
        f"`PLAIN` (Keras called eagerly, TFLite interpreter, same {N} inputs): {p['wall']:.1f} s "
        f"wall, {p['cpu']:.1f} s CPU | {c['wall'] / p['wall']:.2f} ({c['cpu'] / p['cpu']:.2f}) "
        "| <= 1.5 |",
        f"| the same | the same | `PLAIN_GRAPH` (Keras through `tf.function`, as `model.predict`):"
        f" {g['wall']:.1f} s wall, {g['cpu']:.1f} s CPU | {c['wall'] / g['wall']:.2f} "
        f"({c['cpu'] / g['cpu']:.2f}) | <= 1.5 |",
    ]
    if "faulty" in rows:
        f = rows["faulty"]
        lines.append(
            f"| faulty MobileNetV2-size pair (Keras -> TFLite Optimize.DEFAULT; verdict "
            f"{rows['faulty_verdict']}): `convlint diff --num-inputs {N} --repair` (check, "
            f"localization, stage 1, repair, verification; one run) | {f['wall']:.1f} s wall, "
            f"{f['cpu']:.1f} s CPU | `PLAIN`, best of the run: {p['wall']:.1f} s wall, "
            f"{p['cpu']:.1f} s CPU | {f['wall'] / p['wall']:.2f} ({f['cpu'] / p['cpu']:.2f}) "
            "| <= 3 |")
    lines += [
        "",
        f"All runs (wall s): convlint {c['walls']}, PLAIN {p['walls']}, PLAIN_GRAPH {g['walls']}; "
        f"CPU s: convlint {c['cpus']}, PLAIN {p['cpus']}, PLAIN_GRAPH {g['cpus']}.",
        "",
        f"Where the clean pair's time goes (seconds, from the best run's report): "
        f"`{json.dumps({k: v for k, v in rows['clean_legs'].items() if v is not None})}`.",
    ]
    if "faulty" in rows:
        fl = {k: v for k, v in rows["faulty_legs"].items() if v is not None}
        lines.append(f"The faulty pair's: `{json.dumps(fl)}`.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
