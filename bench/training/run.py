"""Training benchmark: convlint train-check on buggy training programs and their fixed twins,
against the baselines run on the same programs, plus the probes' overhead.

    python bench/training/run.py [--jobs N] [--only NAME,...] [--no-baselines] [--no-overhead]
    python bench/training/run.py --overhead-only [--frameworks torch,keras] [--repeats N]

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
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "convlint",
            "train-check",
            str(script),
            "--allow-exec",
            "--format",
            "json",
            "--timeout",
            str(timeout),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        cwd=script.parent,
    )
    try:
        d = json.loads(p.stdout)
    except ValueError:
        d = {"verdict": "error", "findings": [], "stderr": p.stderr[-1000:]}
    d["wall"] = time.perf_counter() - t0
    return d


def baseline(mode: str, script: Path, timeout: float = 300) -> dict:
    try:
        p = subprocess.run(
            [sys.executable, str(HERE / "baseline_boot.py"), mode, str(script)],
            capture_output=True,
            text=True,
            env=ENV,
            cwd=script.parent,
            timeout=timeout,
        )
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("BASELINE ")), None)
        return json.loads(line[9:]) if line else {"error": p.stderr[-300:]}
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}


def score(case: Case, bad: dict, good: dict) -> dict:
    fs = [f for f in bad.get("findings", []) if f["severity"] in ("error", "warning")]
    hit = [f for f in fs if f["rule"] in case.rules]
    fix_ok = case.fix_word is None or any(
        case.fix_word.lower() in ((f.get("repair") or {}).get("description") or "").lower()
        for f in fs
    )
    return {
        "detected": bool(fs),
        "symptom": bool(hit),
        "layer": None if case.layer is None else any(f.get("layer") == case.layer for f in fs),
        "hyperparameter": any(f.get("hyperparameter") == case.hyperparameter for f in fs),
        "fix": bool(fs) and fix_ok,
        "false_alarm": [
            f["rule"] for f in good.get("findings", []) if f["severity"] in ("error", "warning")
        ],
        "rules": sorted({f["rule"] for f in fs}),
        "verdict": bad.get("verdict"),
        "fixed_verdict": good.get("verdict"),
        "steps": (bad.get("training") or {}).get("steps_recorded"),
        "seconds": round(bad.get("wall", 0), 1),
    }


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    return StandardScaler().fit_transform(X).astype("float32"), y


# the overhead programs: (name, kind, width); "mlp" 64-W-W/2-10 on the digits, "cnn" two 3x3
# convolutions of W and 2W channels on the digits as 8x8 images; the "large" rows have steps
# about 10-30x longer, to show where the fixed per-step cost stops mattering
OVERHEAD_MODELS = [
    ("MLP", "mlp", 128),
    ("CNN", "cnn", 16),
    ("large MLP", "mlp", 2048),
    ("large CNN", "cnn", 96),
]


def _torch_model(kind: str, w: int):
    import torch

    nn = torch.nn
    if kind == "mlp":
        return nn.Sequential(
            nn.Linear(64, w), nn.ReLU(), nn.Linear(w, w // 2), nn.ReLU(), nn.Linear(w // 2, 10)
        )
    return nn.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        nn.Conv2d(1, w, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(w, 2 * w, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(2 * w * 64, 10),
    )


def _keras_model(kind: str, w: int):
    import keras

    L = keras.layers  # noqa: N806
    if kind == "mlp":
        layers = [
            keras.Input((64,)),
            L.Dense(w, activation="relu"),
            L.Dense(w // 2, activation="relu"),
        ]
    else:
        layers = [
            keras.Input((64,)),
            L.Reshape((8, 8, 1)),
            L.Conv2D(w, 3, padding="same", activation="relu"),
            L.Conv2D(2 * w, 3, padding="same", activation="relu"),
            L.Flatten(),
        ]
    return keras.Sequential([*layers, L.Dense(10, activation="softmax")])


def overhead(epochs: int = 3, repeats: int = 3, frameworks: tuple = ("torch", "keras"),
             models: tuple | None = None) -> list[dict]:
    """Probed against unprobed training in this process: the same model, data, seed and loop;
    best of ``repeats`` runs each, alternated so load on the machine hits both alike."""
    X, y = _digits()
    rows = []
    if "torch" in frameworks:
        import torch

        from convlint.analyzers.training import convlint_probe

        torch.set_num_threads(1)
        xt, yt = torch.tensor(X), torch.tensor(y)

        def torch_run(kind, w, probe_every):
            torch.manual_seed(0)
            m = _torch_model(kind, w)
            opt = torch.optim.Adam(m.parameters(), 1e-3)
            h = convlint_probe(m, opt, every=probe_every) if probe_every else None
            t0 = time.perf_counter()
            for _ in range(epochs):
                for i in range(0, len(xt), 32):
                    opt.zero_grad()
                    loss = torch.nn.functional.cross_entropy(m(xt[i:i + 32]), yt[i:i + 32])
                    loss.backward()
                    opt.step()
            if h:
                assert len(h.trace()["steps"]) >= epochs * (len(xt) // 32) // max(1, probe_every)
                h.remove()
            return time.perf_counter() - t0

        for name, kind, w in OVERHEAD_MODELS:
            if models and name not in models:
                continue
            rows += _measure(
                "torch", name, lambda e, kind=kind, w=w: torch_run(kind, w, e), repeats
            )
    if "keras" in frameworks:
        import keras

        from convlint.analyzers.training import ConvlintCallback

        def keras_run(kind, w, probe_every):
            keras.utils.set_random_seed(0)
            m = _keras_model(kind, w)
            m.compile(
                optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
            )
            cbs = [ConvlintCallback((X[:64], y[:64]), every=probe_every)] if probe_every else []
            # the step's trace, outside the timing
            m.fit(X[:64], y[:64], epochs=1, verbose=0, callbacks=cbs)
            t0 = time.perf_counter()
            m.fit(X, y, epochs=epochs, batch_size=32, verbose=0, callbacks=cbs)
            return time.perf_counter() - t0

        for name, kind, w in OVERHEAD_MODELS[:3]:  # a large Keras CNN takes minutes per run here
            if models and name not in models:
                continue
            rows += _measure(
                "keras", name, lambda e, kind=kind, w=w: keras_run(kind, w, e), repeats
            )
    return rows


def _measure(fw: str, name: str, run, repeats: int) -> list[dict]:
    steps = 3 * ((1797 + 31) // 32)
    times: dict = {0: [], 1: [], 10: []}
    for _ in range(repeats):
        for every in times:
            times[every].append(run(every))
    base = min(times[0])
    out = []
    for every in (1, 10):
        t = min(times[every])
        out.append(
            {
                "framework": fw,
                "model": name,
                "every": every,
                "unprobed_s": base,
                "probed_s": t,
                "ratio": t / base,
                "step_ms": 1000 * base / steps,
                "extra_ms": 1000 * (t - base) / steps,
            }
        )
        print(f"overhead {fw} {name} every {every}: {t / base:.2f}x", file=sys.stderr, flush=True)
    return out


def render_overhead(over: list[dict], command: str) -> str:
    lines = [
        "## Probe overhead (issue 23)",
        "",
        f"Command: `{command}`, {time.strftime('%Y-%m-%d')} on this machine (2 cores shared with "
        f"other jobs; one thread). Peer: the same training without the probe, same process, same "
        f"run, best of repeated alternated runs; 3 epochs of the digits (171 steps of 32). "
        f"Target: at most 1.2x recording every step. Probes: `convlint_probe` (torch) and "
        f"`ConvlintCallback` (Keras fit), as train-check attaches them.",
        "",
        "| framework | model | recorded every | unprobed step ms | probed s / unprobed s | ratio | "
        "added ms per step | met |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in over:
        met = "yes" if r["ratio"] <= 1.2 else ("n/a" if r["every"] != 1 else "no")
        lines.append(
            f"| {r['framework']} | {r['model']} | {r['every']} step(s) | {r['step_ms']:.2f} | "
            f"{r['probed_s']:.2f} / {r['unprobed_s']:.2f} | {r['ratio']:.2f}x | "
            f"{r['extra_ms']:.2f} | {met} |"
        )
    return "\n".join(lines) + "\n"


def pct(n: int, d: int) -> str:
    return f"{n}/{d} ({100 * n / d:.0f}%)" if d else "n/a"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--no-overhead", action="store_true")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument(
        "--overhead-only",
        action="store_true",
        help="only the probe overhead (issue 23): probed against unprobed training of the same "
        "programs in this run; writes the 'probe-overhead' section of bench/RESULTS.md",
    )
    ap.add_argument("--frameworks", default="torch,keras", help="overhead: torch, keras or both")
    ap.add_argument(
        "--repeats", type=int, default=3, help="overhead: runs of each variant (best is kept)"
    )
    ap.add_argument(
        "--models", default="", help="overhead: only these models (MLP, CNN, large MLP, large CNN)"
    )
    args = ap.parse_args()
    t0 = time.perf_counter()
    if args.overhead_only:
        over = overhead(repeats=args.repeats, frameworks=tuple(args.frameworks.split(",")),
                        models=tuple(args.models.split(",")) if args.models else None)
        cmd = "python bench/training/run.py --overhead-only" + (
            f" --frameworks {args.frameworks}" if args.frameworks != "torch,keras" else "") + (
            f" --repeats {args.repeats}" if args.repeats != 3 else "") + (
            f" --models '{args.models}'" if args.models else "")
        md = render_overhead(over, cmd)
        print(md)
        if not args.no_write:
            write_section("probe-overhead", md)
        return 0
    with tempfile.TemporaryDirectory(prefix="convlint-bench-train-") as tmp:
        progs = write(tmp)
        if args.only:
            keep = set(args.only.split(","))
            progs = [p for p in progs if p[0].name in keep]
        jobs = []
        for case, pb, pg in progs:
            jobs += [("convlint", case, pb), ("convlint", case, pg)]
            if not args.no_baselines:
                modes = (
                    ["keras_callbacks", "check_numerics"]
                    if case.framework == "keras"
                    else ["detect_anomaly"]
                )
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
                    kb, kg = (
                        results[("keras_callbacks", pb.name)],
                        results[("keras_callbacks", pg.name)],
                    )
                    cb, cg = (
                        results[("check_numerics", pb.name)],
                        results[("check_numerics", pg.name)],
                    )
                    s["baselines"] = {
                        "TerminateOnNaN": (kb.get("terminate_on_nan"), kg.get("terminate_on_nan")),
                        "EarlyStopping": (kb.get("early_stopping"), kg.get("early_stopping")),
                        "check_numerics": (cb.get("check_numerics"), cg.get("check_numerics")),
                    }
                else:
                    db, dg = (
                        results[("detect_anomaly", pb.name)],
                        results[("detect_anomaly", pg.name)],
                    )
                    s["baselines"] = {
                        "detect_anomaly": (db.get("detect_anomaly"), dg.get("detect_anomaly"))
                    }
            rows.append((case, s))
    elapsed = time.perf_counter() - t0
    md = render(rows, elapsed, args)
    print(md)
    if not args.no_write and not args.only:
        write_section("training", md)
    return 0


def render(rows, elapsed, args) -> str:
    n = len(rows)
    lines = [
        "## Training checks (`make bench-training`)",
        "",
        f"Command: `make bench-training` (`python bench/training/run.py --jobs {args.jobs}`), "
        f"{time.strftime('%Y-%m-%d')}, {elapsed / 60:.1f} min on this machine.",
        "",
        f"{n} buggy training programs ({sum(c.framework == 'keras' for c, _ in rows)} Keras 3, "
        f"{sum(c.framework == 'torch' for c, _ in rows)} PyTorch), each with its fixed twin, "
        f"generated by `bench/training/programs.py` on scikit-learn's bundled datasets.",
        "",
        "| | convlint train-check |",
        "| --- | --- |",
    ]
    lay = [s["layer"] for _, s in rows if s["layer"] is not None]
    lines += [
        f"| detected (an error or warning finding) | "
        f"{pct(sum(s['detected'] for _, s in rows), n)} |",
        f"| expected symptom (one of the case's rules) | "
        f"{pct(sum(s['symptom'] for _, s in rows), n)} |",
        f"| exact layer (cases with a one-layer fault) | {pct(sum(lay), len(lay))} |",
        f"| right hyperparameter | {pct(sum(s['hyperparameter'] for _, s in rows), n)} |",
        f"| right fix (names the expected change) | {pct(sum(s['fix'] for _, s in rows), n)} |",
        f"| false alarms on the fixed twins | "
        f"{pct(sum(bool(s['false_alarm']) for _, s in rows), n)} |",
        "",
    ]
    if rows and "baselines" in rows[0][1]:
        lines += [
            "Baselines on the same programs (detected on the buggy program / false alarm on its "
            "fixed twin):",
            "",
            "| baseline | programs | detected | false alarms |",
            "| --- | --- | --- | --- |",
        ]
        names = {}
        for _c, s in rows:
            for b, (d, fa) in s.get("baselines", {}).items():
                names.setdefault(b, []).append((bool(d), bool(fa)))
        for b, v in names.items():
            lines.append(
                f"| {b} | {len(v)} | {pct(sum(d for d, _ in v), len(v))} | "
                f"{pct(sum(fa for _, fa in v), len(v))} |"
            )
        lines.append("")
    lines += [
        "Per program:",
        "",
        "| program | category | detected | symptom | layer | hyperparameter | fix | rules | "
        "false alarm on twin | steps | s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]

    def yn(x):
        return "n/a" if x is None else ("yes" if x else "**no**")

    for c, s in rows:
        lines.append(
            f"| {c.name} | {c.category} | {yn(s['detected'])} | {yn(s['symptom'])} | "
            f"{yn(s['layer'])} | {yn(s['hyperparameter'])} | {yn(s['fix'])} | "
            f"{' '.join(s['rules'])} | {' '.join(s['false_alarm']) or 'none'} | {s['steps']} | "
            f"{s['seconds']} |"
        )
    lines += [
        "",
        'Probe overhead: see "Probe overhead (issue 23)" (`python bench/training/run.py '
        '--overhead-only`).',
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
