"""Stage 2: parameters. Compare each aligned layer's weights after layout normalization and
BatchNorm folding, and say what happened to them."""

from __future__ import annotations

import numpy as np

from convlint.analyzers import rules as R
from convlint.analyzers.localize.align import KernelMatch, channel_score
from convlint.analyzers.localize.align import rel_err as _rel
from convlint.analyzers.report.findings import Finding, Location

WEIGHT_RTOL = 1e-5  # relative L2 error below which weights are taken as equal


def reference_weights(m: KernelMatch) -> tuple:
    """The source's weights as the target should hold them: BN folded in when the target's
    kernel is closer to the folded one. Returns ``(weight, bias, folded)``."""
    s, t = m.source, m.target
    w_plain, b_plain = s.weight, s.bias
    # whether the target folded BN is decided on the kernel read the right way round
    tw = np.swapaxes(t.weight, 2, 3) if m.method == "weights-hw-swapped" else t.weight
    if s.bn:
        w_f, b_f = s.folded()
        if w_f.shape == tw.shape and _rel(w_f, tw) < _rel(w_plain, tw):
            return w_f, b_f, True
    return w_plain, b_plain, False


def compare(m: KernelMatch) -> dict:
    """Per-layer weight comparison: relative errors and a diagnosis."""
    t = m.target
    w, b, folded = reference_weights(m)
    rel_w = _rel(w, t.weight) if w.shape == t.weight.shape else float("inf")
    rel_b = None
    # a target kernel without a bias slot keeps it in a following Add: nothing to compare here
    if b is not None and t.bias is not None and b.shape == t.bias.shape:
        rel_b = _rel(b, t.bias)
    res = {"rel_err_weight": rel_w, "rel_err_bias": rel_b, "bn_folded": folded,
           "stored_dtype": t.stored_dtype, "score": m.score, "diagnosis": None}
    worst = max(rel_w, rel_b or 0.0)
    if m.method == "weights-hw-swapped":
        ws = np.swapaxes(w, 2, 3)
        if ws.shape == t.weight.shape and _rel(ws, t.weight) < 0.5 * rel_w:
            res["diagnosis"] = "transposed"
            res["rel_err_after_swap"] = _rel(ws, t.weight)
            return res
    if worst <= WEIGHT_RTOL:
        return res
    if t.quant is not None or t.stored_dtype in ("int8", "uint8", "int16", "int4"):
        res["diagnosis"] = "quantized"
        res["scales"] = int(np.size((t.quant or {}).get("scales", [])))
    elif (
        t.stored_dtype == "float16"
        or _rel(w.astype(np.float16).astype(np.float64), t.weight) < 0.1 * rel_w
    ):
        res["diagnosis"] = "float16"
    elif _on_grid(t.weight):
        res["diagnosis"] = "quantized"
        res["fake_quantized"] = True
    elif (folded and m.source.bn is not None  # folded: the source has a BatchNorm
          and (eps := _epsilon_from_scale(m, t.weight)) is not None):
        res["diagnosis"] = "bn-epsilon"
        res["epsilon_source"] = m.source.bn["eps"]
        res["epsilon_target"] = eps
    else:
        res["diagnosis"] = "corrupted"
        changed = (
            np.abs(w - t.weight) > 1e-6 * (np.abs(w).max() + 1e-12) if rel_w > WEIGHT_RTOL else None
        )
        res["changed_fraction"] = float(changed.mean()) if changed is not None else 0.0
        res["which"] = "weight" if rel_w > WEIGHT_RTOL else "bias"
    return res


def _epsilon_from_scale(m: KernelMatch, tw: np.ndarray) -> float | None:
    """The BatchNorm epsilon the target's folded kernel was made with, when it differs from the
    source's folded kernel by exactly the per-channel scale sqrt(var + eps) / sqrt(var + eps')."""
    bn = m.source.bn
    if bn is None:  # only asked about folded kernels, which have one
        return None
    w_f, _ = m.source.folded()
    rows_s, rows_t = w_f.reshape(len(w_f), -1), tw.reshape(len(tw), -1)
    den = (rows_s * rows_s).sum(1)
    if np.any(den == 0):
        return None
    r = (rows_s * rows_t).sum(1) / den               # per-channel scale, target over source
    if _rel(rows_s * r[:, None], rows_t) > 1e-5 or np.any(r <= 0):
        return None                                  # not a pure per-channel rescaling
    eps = (bn["var"] + bn["eps"]) / r ** 2 - bn["var"]
    est = float(np.median(eps))
    if est < 0 or np.std(eps) > 0.05 * abs(est) + 1e-7 or abs(est - bn["eps"]) < 1e-9:
        return None
    return est


def _on_grid(w: np.ndarray) -> bool:
    """Float weights that take at most 256 distinct values per output channel (fake-quantized)."""
    rows = w.reshape(w.shape[0], -1)
    return rows.shape[1] > 256 and all(len(np.unique(r)) <= 256 for r in rows[:8])


def stage(matches: list) -> tuple:
    """Findings for the aligned layers whose weights differ, and the per-layer table."""
    findings, table = [], []
    for m in matches:
        c = compare(m)
        row = {"layer": m.source.layer, "target": m.target.layer, **{
            k: v for k, v in c.items() if k != "score"}}
        table.append(row)
        d = c["diagnosis"]
        if d is None:
            continue
        loc = Location(source_node=m.source.layer, target_node=m.target.layer)
        ev = {k: v for k, v in c.items() if v is not None}
        layer = m.source.layer
        if d == "quantized":
            how = (
                "fake-quantized to a 256-level grid"
                if c.get("fake_quantized")
                else f"stored as {c['stored_dtype']} "
                f"({'per-channel' if c.get('scales', 0) > 1 else 'per-tensor'} scale)"
            )
            f = Finding(
                R.WEIGHTS_QUANTIZED.code,
                "error",
                "parameters",
                f"{layer} weights are {how} in the target: relative error "
                f"{c['rel_err_weight']:.3g}",
                layer=layer,
                location=loc,
                evidence=ev,
            )
        elif d == "float16":
            f = Finding(R.WEIGHTS_FP16.code, "error", "parameters",
                        f"{layer} weights lost precision to float16 in the target: relative error "
                        f"{c['rel_err_weight']:.3g}", layer=layer, location=loc, evidence=ev)
        elif d == "bn-epsilon":
            f = Finding(
                R.BN_EPSILON.code,
                "error",
                "hyperparameters",
                f"{layer}'s BatchNorm ({m.source.bn.get('layer')}) was folded with epsilon "
                f"{c['epsilon_target']:.3g} in the target; the source uses "
                f"{c['epsilon_source']:.3g}",
                layer=m.source.bn.get("layer") or layer,
                location=loc,
                evidence=ev,
                hyperparameter=None,
            )
        elif d == "transposed":
            f = Finding(
                R.KERNEL_TRANSPOSED.code,
                "error",
                "parameters",
                f"{layer} kernel has its height and width swapped in the target "
                f"(matches the source after a swap: relative error {c['rel_err_after_swap']:.3g})",
                layer=layer,
                location=loc,
                evidence=ev,
            )
        else:
            what = c.get("which", "weight")
            err = c["rel_err_weight"] if what == "weight" else c["rel_err_bias"]
            noun = "weights differ" if what == "weight" else "bias differs"
            f = Finding(R.WEIGHTS_CORRUPTED.code, "error", "parameters",
                        f"{layer} {noun} from the source's in the target: relative error "
                        f"{err:.3g}, {c.get('changed_fraction', 0):.0%} of elements changed",
                        layer=layer, location=loc, evidence=ev)
        findings.append(f)
    return findings, table


__all__ = ["channel_score", "compare", "reference_weights", "stage"]
