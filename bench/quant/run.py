"""Quantization debugging on models convlint was not built around (issue 21 B).

Real pre-trained float models that wheels ship (facenet-pytorch's MTCNN nets, exported by
torch.onnx; mediapipe's detectors and landmark models, converted by tf2onnx: the float ONNX models
bench/realbugs' clean cases build) are quantized to QDQ int8 by onnxruntime's ``quantize_static``,
each three ways:

- ``clean``: calibrated on data covering the inputs (uniform in [-1, 1], as the check draws them);
- ``narrow``: calibrated on 1% of that range (a calibration set that does not cover the inputs);
- ``outlier``: one output channel of a convolution scaled by 1000 and read back scaled down by
  the next convolution through a positively homogeneous activation (ReLU, PReLU, max-pooling),
  so the float model computes the same function but its per-tensor activation range is wrecked.
  The first eligible convolution in graph order is chosen by code, not by hand.

Each pair runs through ``convlint diff SRC TGT --repair --calibration CAL --no-tvm --format
json`` (a subprocess, as a user runs it), and through the peer: onnxruntime's ``qdq_loss_debug``
(per-tensor SQNR of the QDQ model against its float source; a tensor under ``PEER_SQNR_DB`` dB is
flagged, the rule of thumb its users apply). Scored: a fault detected (an error finding / a flagged
tensor), the layer named (the injected convolution, or for ``narrow`` the first layer), a verified
repair (convlint only: the peers do not repair), and false positives on the clean twins.

The TFLite track (``tflite.py``) does the same for full-integer TFLite from a Keras source,
against TFLite's ``QuantizationDebugger``. ``--tracks onnx`` or ``--tracks tflite`` runs one and
keeps the other's rows from results.json. The notes under the table are NOTES.md, kept by hand.

Run: ``python bench/quant/run.py`` (``make bench-quant``); results in bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tflite as TFL  # noqa: E402  (the TFLite track, beside this file)

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CASES = ROOT / "bench" / "realbugs" / "cases"
WORK = HERE / ".cases"
MODELS = ["clean_facenet_pnet_torchonnx", "clean_facenet_onet_torchonnx",
          "clean_mediapipe_face_detection_tf2onnx", "clean_mediapipe_iris_landmark_tf2onnx",
          "clean_mediapipe_hand_landmark_tf2onnx", "clean_mediapipe_palm_detection_tf2onnx"]
HOMOGENEOUS = {"Relu", "PRelu", "LeakyRelu", "MaxPool"}
SCALE = 1000.0
N_CAL = 32
PEER_SQNR_DB = 20.0


def float_onnx(name: str, out: Path) -> Path:
    """The float ONNX model a realbugs clean case converts (its target), built in ``out``."""
    sys.path.insert(0, str(CASES))
    mod = __import__(name)
    _, tgt = mod.build(out)
    return Path(tgt)


def _input(model) -> tuple[str, list]:
    i = model.graph.input[0]
    dims = [d.dim_value or 1 for d in i.type.tensor_type.shape.dim]
    return i.name, dims


def inject_outlier(src: Path, dst: Path) -> list | None:
    """Scale one convolution's output channel by SCALE and the next convolution's input channel
    by 1/SCALE, through positively homogeneous ops only: the same function, a wrecked range.
    Returns the scaled convolution's node name and the nodes on the way to the next convolution,
    whose outputs carry the wrecked range too (None when the graph has no such pair)."""
    import onnx
    from onnx import numpy_helper

    m = onnx.load(str(src))
    g = m.graph
    inits = {t.name: t for t in g.initializer}
    readers: dict = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    for a in g.node:
        if a.op_type != "Conv" or len(a.input) < 3 or a.input[1] not in inits:
            continue
        if int(next((x.i for x in a.attribute if x.name == "group"), 1)) != 1:
            continue
        path, t = [], a.output[0]
        while len(readers.get(t, [])) == 1 and readers[t][0].op_type in HOMOGENEOUS:
            path.append(readers[t][0])
            t = readers[t][0].output[0]
        nxt = readers.get(t, [])
        if len(nxt) != 1 or nxt[0].op_type != "Conv" or nxt[0].input[1] not in inits:
            continue
        b = nxt[0]
        if int(next((x.i for x in b.attribute if x.name == "group"), 1)) != 1:
            continue
        if any(p.op_type == "PRelu" and p.input[1] not in inits for p in path):
            continue
        wa = numpy_helper.to_array(inits[a.input[1]]).copy()
        ba = numpy_helper.to_array(inits[a.input[2]]).copy()
        wb = numpy_helper.to_array(inits[b.input[1]]).copy()
        wa[0] *= SCALE
        ba[0] *= SCALE
        wb[:, 0] /= SCALE
        for name, arr in ((a.input[1], wa), (a.input[2], ba), (b.input[1], wb)):
            inits[name].CopyFrom(numpy_helper.from_array(arr.astype(np.float32), name))
        onnx.save(m, str(dst))
        return [a.name, *(p.name for p in path)]
    return None


def quantize(src: Path, dst: Path, data: np.ndarray, input_name: str, per_channel=True) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(data)

        def get_next(self):
            v = next(self.it, None)
            return None if v is None else {input_name: v}

    quantize_static(str(src), str(dst), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=per_channel)


def peer(src: Path, tgt: Path, data: np.ndarray, input_name: str) -> list:
    """onnxruntime's qdq_loss_debug: the QDQ model's tensors whose SQNR against the float model
    is under PEER_SQNR_DB dB, in graph order (the first is the layer it would name)."""
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    d = tgt.parent
    fa, qa = d / "peer.float.onnx", d / "peer.qdq.onnx"
    modify_model_output_intermediate_tensors(str(src), str(fa))
    modify_model_output_intermediate_tensors(str(tgt), str(qa))
    feeds = [{input_name: v} for v in data]
    f_acts = collect_activations(str(fa), feeds)
    q_acts = collect_activations(str(qa), feeds)
    errs = compute_activation_error(create_activation_matching(q_acts, f_acts))
    fa.unlink()
    qa.unlink()
    import onnx

    order = {o: i for i, n in enumerate(onnx.load(str(src)).graph.node) for o in n.output}
    return sorted((k for k, v in errs.items() if v.get("xmodel_err", 1e9) < PEER_SQNR_DB),
                  key=lambda k: order.get(k, len(order)))


def run_convlint(src: Path, tgt: Path, cal: Path, out: Path) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "convlint", "diff", str(src), str(tgt), "--repair",
           "--calibration", str(cal), "--no-tvm", "--format", "json", "--output", str(out)]
    t0 = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800,
                       env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return json.loads(p.stdout), time.perf_counter() - t0


def names(layer: str, want: list) -> bool:
    """Whether a tensor or node name is one of ``want``: it, an ONNX node name within it, or a
    TFLite tensor name (``model/conv2d_1/Conv2D;model/activation_1/Relu``) with a path segment
    that is one (``conv2d_1`` is not ``separable_conv2d_1`` nor ``conv2d_10``)."""
    import re

    segments = [s for part in layer.split(";") for s in part.split("/")]
    return layer in want or any(  # Keras 3 scopes a layer's ops as name_1 (model_1_1/conv2d_1_1)
        any(re.fullmatch(re.escape(w) + r"(_\d+)?", s) for s in segments)
        or ("/" in w and w in layer) for w in want)


def score(kind: str, expect: list | None, report: dict, first: str, flagged: list) -> dict:
    errors = [f for f in report["findings"] if f["severity"] == "error"]
    faults = [f for f in errors if f["rule"] == "CL205"]
    want = expect if kind == "outlier" else [first]
    row = {"verdict": report["verdict"], "errors": sorted({f["rule"] for f in errors})}
    if kind == "clean":
        row.update(fp=bool(errors), peer_fp=bool(flagged))
        return row
    if kind == "per-tensor":  # no ground truth: per-tensor weights may or may not hurt
        rep = faults[0]["repair"] if faults else None
        row.update(flagged=bool(errors), peer_flagged=bool(flagged),
                   repaired=bool(rep and rep.get("verified")),
                   per_channel=bool(rep and (rep.get("metrics_after") or {}).get("per_channel")))
        return row
    named = faults[0]["layer"] if faults else None
    rep = faults[0]["repair"] if faults else None
    row.update(
        detected=bool(errors),
        layer=bool(named) and names(named, want),
        named=named,
        expected=want,
        repaired=bool(rep and rep.get("verified")),
        kept=(rep or {}).get("metrics_after", {}) and rep["metrics_after"].get("keep_in_float"),
        peer_detected=bool(flagged),
        peer_layer=bool(flagged) and names(flagged[0], want),
    )
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--tflite-models", nargs="*", default=TFL.MODELS)
    ap.add_argument("--tracks", nargs="*", default=["onnx", "tflite"], choices=["onnx", "tflite"],
                    help="the tracks to run; the rows of the others are kept from results.json")
    ap.add_argument("--no-write", action="store_true", help="do not update bench/RESULTS.md")
    args = ap.parse_args(argv)
    rows = []
    if "onnx" in args.tracks:
        rows += onnx_track(args.models)
    if "tflite" in args.tracks:
        rows += tflite_track(args.tflite_models)
    saved = HERE / "results.json"
    old = json.loads(saved.read_text()) if saved.exists() else []
    rows = [r for r in old if r.get("track", "onnx") not in args.tracks] + rows
    (HERE / "results.json").write_text(json.dumps(rows, indent=1) + "\n")
    if not args.no_write:
        write_results(rows, " ".join(["python bench/quant/run.py", *(sys.argv[1:])]))
    return 0


def tflite_track(models: list) -> list:
    """Full-integer TFLite from Keras sources against QuantizationDebugger (tflite.py)."""
    rows = []
    for name in models:
        d = WORK / name
        d.mkdir(parents=True, exist_ok=True)
        src = TFL.keras_source(name, d)
        import keras

        shape = list(keras.models.load_model(src, compile=False).input_shape[1:])
        full = np.random.default_rng(1).uniform(-1, 1, (N_CAL, *shape)).astype(np.float32)
        cal = d / "calibration.npy"
        np.save(cal, full)
        expect = TFL.inject_outlier(src, d / "outlier.keras", SCALE, full)
        first = TFL.OUTLIER[2][0]  # the first convolution (conv2d_1)
        variants = {"clean": (src, full), "narrow": (src, full * 0.01), "per-tensor": (src, full),
                    "outlier": (d / "outlier.keras", full)}
        for kind, (s, data) in variants.items():
            tgt = d / f"{kind}.int8.tflite"
            TFL.quantize(s, tgt, data, per_channel=kind != "per-tensor")
            flagged = TFL.peer(s, data, full, per_channel=kind != "per-tensor")
            out = d / f"{kind}.repaired.tflite"
            out.unlink(missing_ok=True)
            report, secs = run_convlint(s, tgt, cal, out)
            row = {"model": name.removeprefix("clean_"), "track": "tflite", "kind": kind,
                   "seconds": round(secs, 1), **score(kind, expect, report, first, flagged)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def onnx_track(models: list) -> list:
    import onnx

    rows = []
    for name in models:
        d = WORK / name
        d.mkdir(parents=True, exist_ok=True)
        base = float_onnx(name, d)
        iname, shape = _input(onnx.load(str(base)))
        rng = np.random.default_rng(1)
        full = rng.uniform(-1, 1, (N_CAL, *shape)).astype(np.float32)
        cal = d / "calibration.npy"
        np.save(cal, full.reshape(N_CAL, *shape[1:]) if shape[0] == 1 else full)
        first = next(n.name for n in onnx.load(str(base)).graph.node if n.op_type == "Conv")
        variants = {"clean": (base, full), "narrow": (base, full * 0.01),
                    "per-tensor": (base, full)}
        scaled = d / "outlier.float.onnx"
        expect = inject_outlier(base, scaled)
        if expect:
            variants["outlier"] = (scaled, full)
        for kind, (src, data) in variants.items():
            tgt = d / f"{kind}.qdq.onnx"
            quantize(src, tgt, data, iname, per_channel=kind != "per-tensor")
            flagged = peer(src, tgt, full, iname)
            out = d / f"{kind}.repaired.onnx"
            out.unlink(missing_ok=True)
            report, secs = run_convlint(src, tgt, cal, out)
            row = {"model": name.removeprefix("clean_"), "track": "onnx", "kind": kind,
                   "seconds": round(secs, 1), **score(kind, expect, report, first, flagged)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def write_results(rows: list, command: str) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from results import write_section

    def track(t):
        rs = [r for r in rows if r.get("track", "onnx") == t]
        return ([r for r in rs if r["kind"] in ("narrow", "outlier")],
                [r for r in rs if r["kind"] == "per-tensor"],
                [r for r in rs if r["kind"] == "clean"])

    def n(rs, k):
        return f"{sum(bool(r[k]) for r in rs)}/{len(rs)}"

    (faults, pt, clean), (tfaults, tpt, tclean) = track("onnx"), track("tflite")
    lines = [
        "## Quantization faults on real models (issue 21 B)",
        "",
        f"Real float models that wheels ship (facenet-pytorch's MTCNN nets through torch.onnx, "
        f"mediapipe's models through tf2onnx), quantized to QDQ int8 by onnxruntime's "
        f"`quantize_static` with per-channel weights: calibrated on the inputs' range (clean), "
        f"on 1% of it (narrow), and with an outlier channel injected by a function-preserving "
        f"rescaling (outlier). The peer is onnxruntime's `qdq_loss_debug` (a tensor under "
        f"{PEER_SQNR_DB:g} dB SQNR flagged). The TFLite track quantizes a Keras source (fer's "
        f"pre-trained mini-Xception) to full-integer TFLite the same three ways; its peer is "
        f"TFLite's `QuantizationDebugger` on the same converter and inputs (a tensor with "
        f"rmse/scale over {TFL.PEER_RMSE_SCALE:g} flagged, its guide's rule).",
        "",
        f"Command: `{command}`",
        "",
        "| | models | detected | layer named | verified repair (stays int8) | "
        "false positives on clean |",
        "|---|---|---|---|---|---|",
        f"| convlint (ONNX QDQ) | {len(clean)} | {n(faults, 'detected')} | {n(faults, 'layer')} | "
        f"{n(faults, 'repaired')} | {n(clean, 'fp')} |",
        f"| qdq_loss_debug | {len(clean)} | {n(faults, 'peer_detected')} | "
        f"{n(faults, 'peer_layer')} | – | {n(clean, 'peer_fp')} |",
    ]
    if tclean:
        lines += [
            f"| convlint (TFLite) | {len(tclean)} | {n(tfaults, 'detected')} | "
            f"{n(tfaults, 'layer')} | {n(tfaults, 'repaired')} | {n(tclean, 'fp')} |",
            f"| QuantizationDebugger | {len(tclean)} | {n(tfaults, 'peer_detected')} | "
            f"{n(tfaults, 'peer_layer')} | – | {n(tclean, 'peer_fp')} |"]
    lines += [
        "",
        "Per-tensor weights (the same calibration, `per_channel=False` or TFLite's "
        "`_experimental_disable_per_channel`; no ground truth, since per-tensor scales hurt some "
        f"models and not others): convlint flags {n(pt + tpt, 'flagged')}, the peers "
        f"{n(pt + tpt, 'peer_flagged')}; convlint's verified repair (per-channel weights, or "
        f"layers kept in float) for {n(pt + tpt, 'repaired')}.", "",
        "| model | track | kind | verdict | convlint named | expected | repaired (kept in float) | "
        "peer flagged | seconds |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        flagged = r.get("peer_detected") or r.get("peer_fp") or r.get("peer_flagged")
        lines.append(f"| {r['model']} | {r.get('track', 'onnx')} | {r['kind']} | {r['verdict']} | "
                     f"{r.get('named') or '–'} | "
                     f"{' or '.join(r.get('expected') or []) or '–'} | "
                     f"{'yes' if r.get('repaired') else ('–' if r['kind'] == 'clean' else 'no')}"
                     f"{' (' + ', '.join(r['kept']) + ')' if r.get('kept') else ''} | "
                     f"{'yes' if flagged else 'no'} | {r['seconds']} |")
    notes = HERE / "NOTES.md"  # what to read the table with, kept by hand beside the code
    if notes.exists():
        lines += ["", notes.read_text().strip()]
    write_section("quant", "\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
