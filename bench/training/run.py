"""Training benchmark: convlint train-check on buggy training programs and their fixed twins,
against the baselines run on the same programs, plus the probes' overhead.

    python bench/training/run.py [--jobs N] [--only NAME,...] [--no-baselines] [--no-overhead]

Scores per program: detection (an error or warning finding), the expected symptom (one of the
case's rules), the exact layer, the right hyperparameter, the right fix (the fix names the
expected change), and false alarms on the fixed twins (any error or warning finding). Baselines:
Keras TerminateOnNaN and EarlyStopping, tf.debugging.enable_check_numerics (Keras programs) and
torch.autograd.detect_anomaly (PyTorch programs). Writes the "training" section of
bench/RESULTS.md with the command that reproduced it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
from programs import Case, write  # noqa: E402

sys.path.insert(0, str(HERE.parent))
from results import write_section  # noqa: E402

ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS="1",
           TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")


def convlint(script: Path, timeout: float = 300) -> dict:
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "convlint", "train-check", str(script), "--allow-exec", "--format", "json",
                        "--timeout", str(timeout)], capture_output=True, text=True, env=ENV, cwd=script.parent)
    try:
        d = json.loads(p.stdout)
    except ValueError:
        d = {"verdict": "error", "findings": [], "stderr": p.stderr[-1000:]}
    d["wall"] = time.perf_counter() - t0
    return d


def baseline(mode: str, script: Path, timeout: float = 300) -> dict:
    try:
        p = subprocess.run([sys.executable, str(HERE / "baseline_boot.py"), mode, str(script)], capture_output=True,
                           text=True, env=ENV, cwd=script.parent, timeout=timeout)
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("BASELINE ")), None)
        return json.loads(line[9:]) if line else {"error": p.stderr[-300:]}
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}


def score(case: Case, bad: dict, good: dict) -> dict:
    fs = [f for f in bad.get("findings", []) if f["severity"] in ("error", "warning")]
    hit = [f for f in fs if f["rule"] in case.rules]
    fix_ok = case.fix_word is None or any(case.fix_word.lower() in ((f.get("repair") or {}).get("description") or "").lower()
                                          for f in fs)
    return {
        "detected": bool(fs),
        "symptom": bool(hit),
        "layer": None if case.layer is None else any(f.get("layer") == case.layer for f in fs),
        "hyperparameter": any(f.get("hyperparameter") == case.hyperparameter for f in fs),
        "fix": bool(fs) and fix_ok,
        "false_alarm": [f["rule"] for f in good.get("findings", []) if f["severity"] in ("error", "warning")],
        "rules": sorted({f["rule"] for f in fs}),
        "verdict": bad.get("verdict"), "fixed_verdict": good.get("verdict"),
        "steps": (bad.get("training") or {}).get("steps_recorded"),
        "seconds": round(bad.get("wall", 0), 1),
    }


def overhead() -> list[dict]:
    """Probed against unprobed training, in this process: the same model, data and seed."""
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X = StandardScaler().fit_transform(X).astype("float32")
    rows = []
    import torch

    from convlint.analyzers.training import convlint_probe

    torch.set_num_threads(1)

    def torch_run(probe_every):
        torch.manual_seed(0)
        m = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64), torch.nn.ReLU(),
                                torch.nn.Linear(64, 10))
        opt = torch.optim.Adam(m.parameters(), 1e-3)
        h = convlint_probe(m, opt, every=probe_every) if probe_every else None
        xt, yt = torch.tensor(X), torch.tensor(y)
        t0 = time.perf_counter()
        for _ in range(3):
            for i in range(0, len(xt), 32):
                opt.zero_grad()
                loss = torch.nn.functional.cross_entropy(m(xt[i:i + 32]), yt[i:i + 32])
                loss.backward()
                opt.step()
        dt = time.perf_counter() - t0
        if h:
            h.remove()
        return dt

    base = min(torch_run(0) for _ in range(3))
    for every in (1, 10):
        t = min(torch_run(every) for _ in range(3))
        rows.append({"framework": "torch", "every": every, "unprobed_s": base, "probed_s": t, "ratio": t / base})
    import keras

    from convlint.analyzers.training import ConvlintCallback

    def keras_run(probe_every):
        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(128, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(10, activation="softmax")])
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        cbs = [ConvlintCallback((X[:64], y[:64]), every=probe_every)] if probe_every else []
        m.fit(X[:64], y[:64], epochs=1, verbose=0)  # compile outside the timing
        t0 = time.perf_counter()
        m.fit(X, y, epochs=3, batch_size=32, verbose=0, callbacks=cbs)
        return time.perf_counter() - t0

    base = min(keras_run(0) for _ in range(2))
    for every in (1, 10):
        t = min(keras_run(every) for _ in range(2))
        rows.append({"framework": "keras", "every": every, "unprobed_s": base, "probed_s": t, "ratio": t / base})
    del np
    return rows


def pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.0f}%)" if d else "n/a"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--no-overhead", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="convlint-bench-train-") as tmp:
        progs = write(tmp)
        if args.only:
            keep = set(args.only.split(","))
            progs = [p for p in progs if p[0].name in keep]
        jobs = []
        for case, pb, pg in progs:
            jobs += [("convlint", case, pb), ("convlint", case, pg)]
            if not args.no_baselines:
                modes = ["keras_callbacks", "check_numerics"] if case.framework == "keras" else ["detect_anomaly"]
                for m in modes:
                    jobs += [(m, case, pb), (m, case, pg)]

        def run(job):
            kind, case, path = job
            return job, (convlint(path) if kind == "convlint" else baseline(kind, path))

        results = {}
        with ThreadPoolExecutor(args.jobs) as ex:
            for i, ((kind, _case, path), res) in enumerate(ex.map(run, jobs)):
                results[(kind, path.name)] = res
                print(f"[{i + 1}/{len(jobs)}] {kind} {path.name}", file=sys.stderr, flush=True)
        rows = []
        for case, pb, pg in progs:
            s = score(case, results[("convlint", pb.name)], results[("convlint", pg.name)])
            if not args.no_baselines:
                if case.framework == "keras":
                    kb, kg = results[("keras_callbacks", pb.name)], results[("keras_callbacks", pg.name)]
                    cb, cg = results[("check_numerics", pb.name)], results[("check_numerics", pg.name)]
                    s["baselines"] = {"TerminateOnNaN": (kb.get("terminate_on_nan"), kg.get("terminate_on_nan")),
                                      "EarlyStopping": (kb.get("early_stopping"), kg.get("early_stopping")),
                                      "check_numerics": (cb.get("check_numerics"), cg.get("check_numerics"))}
                else:
                    db, dg = results[("detect_anomaly", pb.name)], results[("detect_anomaly", pg.name)]
                    s["baselines"] = {"detect_anomaly": (db.get("detect_anomaly"), dg.get("detect_anomaly"))}
            rows.append((case, s))
    over = [] if args.no_overhead else overhead()
    elapsed = time.perf_counter() - t0
    md = render(rows, over, elapsed, args)
    print(md)
    if not args.no_write and not args.only:
        write_section("training", md)
    return 0


def render(rows, over, elapsed, args) -> str:
    n = len(rows)
    lines = ["## Training checks (`make bench-training`)", "",
             f"Command: `make bench-training` (`python bench/training/run.py --jobs {args.jobs}`), "
             f"{time.strftime('%Y-%m-%d')}, {elapsed / 60:.1f} min on this machine.", "",
             f"{n} buggy training programs ({sum(c.framework == 'keras' for c, _ in rows)} Keras 3, "
             f"{sum(c.framework == 'torch' for c, _ in rows)} PyTorch), each with its fixed twin, generated by "
             "`bench/training/programs.py` on scikit-learn's bundled datasets.", "",
             "| | convlint train-check |", "| --- | --- |"]
    lay = [s["layer"] for _, s in rows if s["layer"] is not None]
    lines += [f"| detected (an error or warning finding) | {pct(sum(s['detected'] for _, s in rows), n)} |",
              f"| expected symptom (one of the case's rules) | {pct(sum(s['symptom'] for _, s in rows), n)} |",
              f"| exact layer (cases with a one-layer fault) | {pct(sum(lay), len(lay))} |",
              f"| right hyperparameter | {pct(sum(s['hyperparameter'] for _, s in rows), n)} |",
              f"| right fix (names the expected change) | {pct(sum(s['fix'] for _, s in rows), n)} |",
              f"| false alarms on the fixed twins | {pct(sum(bool(s['false_alarm']) for _, s in rows), n)} |", ""]
    if rows and "baselines" in rows[0][1]:
        lines += ["Baselines on the same programs (detected on the buggy program / false alarm on its fixed twin):", "",
                  "| baseline | programs | detected | false alarms |", "| --- | --- | --- | --- |"]
        names = {}
        for _c, s in rows:
            for b, (d, fa) in s.get("baselines", {}).items():
                names.setdefault(b, []).append((bool(d), bool(fa)))
        for b, v in names.items():
            lines.append(f"| {b} | {len(v)} | {pct(sum(d for d, _ in v), len(v))} | {pct(sum(fa for _, fa in v), len(v))} |")
        lines.append("")
    lines += ["Per program:", "", "| program | category | detected | symptom | layer | hyperparameter | fix | rules | "
              "false alarm on twin | steps | s |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]

    def yn(x):
        return "n/a" if x is None else ("yes" if x else "**no**")

    for c, s in rows:
        lines.append(f"| {c.name} | {c.category} | {yn(s['detected'])} | {yn(s['symptom'])} | {yn(s['layer'])} | "
                     f"{yn(s['hyperparameter'])} | {yn(s['fix'])} | {' '.join(s['rules'])} | "
                     f"{' '.join(s['false_alarm']) or 'none'} | {s['steps']} | {s['seconds']} |")
    if over:
        lines += ["", "Probe overhead (training time with the probe against the same training without it, same "
                  "process, digits MLP 64-128-64-10, 3 epochs; best of repeated runs):", "",
                  "| framework | recorded every | unprobed s | probed s | ratio |", "| --- | --- | --- | --- | --- |"]
        for r in over:
            lines.append(f"| {r['framework']} | {r['every']} step(s) | {r['unprobed_s']:.2f} | {r['probed_s']:.2f} | "
                         f"{r['ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
