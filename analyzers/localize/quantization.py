"""Int8 noise or an int8 fault: each aligned layer of a full-integer target judged by its own
quantization step. Pure numpy over a capture; no runner is called here.

A full-integer model always differs from its float source: uniform rounding to a step ``s``
adds an error of RMSE ``s / sqrt(12)`` (about 0.29 steps, the ideal TFLite's
QuantizationDebugger quotes) at every layer. That is noise. A fault is a layer that loses far
more than its step allows: an outlier channel widens a per-tensor range until the other channels
fall below one step, or calibration saw a narrower range than the inputs, so values are clipped.

Errors are relative, and measured per channel as well as over the whole tensor: an outlier
channel dominates the tensor's norm, so only its siblings' own errors show what they lost. A
layer *inherits* the error of the layers feeding it and *adds* its own; independent errors add in
quadrature, so ``added = sqrt(error^2 - inherited^2)``. A layer adding more than ``FAULT_ADDED``
relative error is a fault; the first one in forward order, and any later ones, are named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convlint.analyzers.localize.align import _views
from convlint.analyzers.localize.graph import _successors, fused_into, source_keys

IDEAL_STEPS = 1 / np.sqrt(12)  # RMSE of uniform rounding, in steps
FAULT_ADDED = 0.2    # relative error a layer may add on top of what it inherits
NOISE_STEPS = 8.0    # output noise budget, in steps of the output's quantization
NOISE_RMSE_STEPS = 4.0  # or the outputs' RMSE, in steps: the max over many elements of
                        # accumulated rounding noise grows with their count, its RMSE does not
TOP1_MIN = 0.9       # top-1 agreement a model within int8 noise keeps
MIN_INPUT_COVER = 0.05  # a calibrated input range narrower than this share of [-1, 1] is suspect


@dataclass
class LayerQuant:
    """One aligned layer's quantization error, relative and in steps of its target tensor."""

    layer: str
    target: str
    step: float
    range: tuple          # the float interval the target's integers represent
    source_range: tuple   # the float source's values on the same inputs
    rmse_steps: float     # RMSE against the source, in steps (ideal about 0.29)
    error: float          # relative error, the worse of the whole tensor and its median channel
    inherited: float      # the error of the layers feeding it
    added: float          # what this layer adds: sqrt(error^2 - inherited^2)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "target": self.target, "step": self.step,
                "range": [float(v) for v in self.range],
                "source_range": [float(v) for v in self.source_range],
                "rmse_steps": round(self.rmse_steps, 4), "error": round(self.error, 6),
                "inherited": round(self.inherited, 6), "added": round(self.added, 6),
                "added_steps": round(self.added_steps, 4)}

    @property
    def added_steps(self) -> float:
        """The added error in steps of this layer's quantization: the debugger's unit."""
        return self.rmse_steps * self.added / self.error if self.error > 0 else 0.0


@dataclass
class QuantJudgement:
    """The table, the layers at fault, and whether the outputs stay within the noise budget."""

    layers: list = field(default_factory=list)     # LayerQuant, forward order
    faults: list = field(default_factory=list)     # LayerQuant adding more than FAULT_ADDED
    budget: float | None = None                    # max |source - target| int8 noise allows
    output_step: float | None = None
    output_rmse_steps: float | None = None  # the worst output's RMSE, in its steps
    within_budget: bool = False
    top1_ok: bool = True

    @property
    def noise(self) -> bool:
        return not self.faults and self.within_budget and self.top1_ok

    def to_dict(self) -> dict:
        return {"layers": [q.to_dict() for q in self.layers],
                "faults": [q.layer for q in self.faults], "budget": self.budget,
                "output_step": self.output_step, "output_rmse_steps": self.output_rmse_steps,
                "within_budget": self.within_budget,
                "top1_ok": self.top1_ok, "noise": self.noise}


def calibrated_ranges(pairs: dict, qparams: dict) -> tuple:
    """``(ranges, narrow)``: per source input, the float range the target's input quantization
    covers, to judge the pair inside; and the inputs whose range is too narrow to be the data's
    (calibration on a sliver of the input range), judged on the default [-1, 1] instead."""
    ranges, narrow = {}, {}
    for s, (t, _) in pairs.items():
        p = qparams.get(t)
        if p is None:
            continue
        lo, hi = p.range
        if hi - lo < MIN_INPUT_COVER * 2.0:
            narrow[s] = (lo, hi)
        else:
            ranges[s] = (lo, hi)
    return ranges, narrow


def _channel_axis(ndim: int, layout: str) -> int | None:
    if ndim == 4:
        return -1 if layout == "NHWC" else 1
    return -1 if ndim >= 2 else None


def _error(s: np.ndarray, t: np.ndarray, axis: int | None) -> float:
    """Relative error, the worse of the whole tensor and the median live channel."""
    d = s - t
    whole = float(np.linalg.norm(d) / (np.linalg.norm(s) or 1.0))
    if axis is None or s.shape[axis] < 2:
        return whole
    sc = np.moveaxis(s, axis, -1).reshape(-1, s.shape[axis])
    dc = np.moveaxis(d, axis, -1).reshape(-1, s.shape[axis])
    norms = np.linalg.norm(sc, axis=0)
    live = norms > 1e-6 * (norms.max() or 1.0)
    if not live.any():
        return whole
    return max(whole, float(np.median(np.linalg.norm(dc, axis=0)[live] / norms[live])))


def _producers(layers: list) -> dict:
    """Each layer's input layers (tensor names resolved to the layer producing them)."""
    producer = {o: x.name for x in layers for o in x.outputs}
    return {x.name: [producer.get(i, i) for i in x.inputs if i and i not in x.weights]
            for x in layers}


def layer_table(src_layers: list, src_runs: list, tgt_runs: list, inputs: list, acts: list,
                qparams: dict, layout: str) -> list:
    """A LayerQuant for every aligned source layer whose target tensor is quantized. A layer the
    target fused into a later one (a convolution whose BatchNorm and ReLU were folded in) has no
    tensor of its own: it is left out when a layer further along its chain is within noise."""
    keys = {n: n for n in inputs} | dict(source_keys(src_layers, src_runs[0]))
    measured = {}
    for a in acts:
        target = a.target
        p = qparams.get(target) if target is not None else None
        key = keys.get(a.source)
        if target is None or p is None or key is None or not np.isfinite(a.rel_err):
            continue
        s_all, t_all = [], []
        for srun, trun in zip(src_runs, tgt_runs, strict=False):
            s = np.asarray(srun[key], np.float64)
            views = [v for v, perm in _views(s, np.asarray(trun[target])) if perm == a.permutation]
            if not views:
                break
            s_all.append(s)
            t_all.append(np.asarray(views[0], np.float64))
        if not s_all:
            continue
        s, t = np.stack(s_all), np.stack(t_all)
        axis = _channel_axis(s.ndim - 1, layout)  # of one sample; the samples come first
        e = _error(s, t, axis + 1 if axis is not None and axis >= 0 else axis)
        measured[a.source] = (target, p, e, float(np.sqrt(np.mean((s - t) ** 2))),
                              (float(s.min()), float(s.max())))
    raw = {n: m[2] for n, m in measured.items()}
    succ = _successors(src_layers)
    err = {n: e for n, e in raw.items()
           if e <= FAULT_ADDED or fused_into(n, succ, raw, FAULT_ADDED) is None}
    preds = _producers(src_layers)

    def inherited(name: str, seen: frozenset = frozenset()) -> float:
        # a layer without a tensor of its own (fused away) passes on what feeds it
        vals = [err[p] if p in err else inherited(p, seen | {p})
                for p in preds.get(name, []) if p not in seen]
        return max(vals, default=0.0)

    table = []
    for name, (target, p, e, rmse, srange) in measured.items():
        if name not in err:
            continue
        inh = inherited(name)
        table.append(LayerQuant(name, target, p.scale, p.range, srange, rmse / p.scale, e, inh,
                                float(np.sqrt(max(e * e - inh * inh, 0.0)))))
    return table


def judge(table: list, metrics: dict, output_layers: list) -> QuantJudgement:
    """Noise or fault: the layers adding more than ``FAULT_ADDED``; the outputs' max error
    against ``NOISE_STEPS`` steps of the output's quantization, or, over outputs of many elements
    (whose max grows with their count), their RMSE against ``NOISE_RMSE_STEPS`` steps; top-1
    agreement."""
    faults = [q for q in table if q.added > FAULT_ADDED]
    outs = [q for q in table if q.layer in output_layers] or table[-1:]
    step = max((q.step for q in outs), default=None)
    budget = NOISE_STEPS * step if step is not None else None
    max_abs = metrics.get("max_abs")
    rmse = max((q.rmse_steps for q in outs), default=None)
    within = budget is not None and max_abs is not None and (
        max_abs <= budget or (rmse is not None and rmse <= NOISE_RMSE_STEPS))
    top1 = metrics.get("top1_agreement")
    return QuantJudgement(table, faults, budget, step, rmse, within,
                          top1 is None or top1 >= TOP1_MIN)
