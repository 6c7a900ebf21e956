"""Rules over a training trace: numerical errors, bad trends and setup faults, each localized to
the first layer whose symptom starts earliest, with a hyperparameter hypothesis, its evidence
and a concrete fix.

Pure Python over the trace of ``record.py`` (no framework import). Thresholds are in
``Thresholds`` (documented in docs/rules.md, "Training thresholds"; configurable with
``[tool.convlint.training]`` or ``analyze(..., thresholds=...)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from convlint.analyzers import rules as R
from convlint.analyzers.report.findings import Finding, Location, Repair, ScriptReport
from convlint.analyzers.sandbox.record import finite
from convlint.analyzers.training import causes

ADAPTIVE = (
    "adam",
    "adamw",
    "adamax",
    "nadam",
    "rmsprop",
    "adagrad",
    "adadelta",
    "lion",
    "adafactor",
)
PROB_LOSSES = ("binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
               "binarycrossentropy", "categoricalcrossentropy", "sparsecategoricalcrossentropy",
               "binary_cross_entropy", "nll_loss", "kl_div")
BINARY_LOSSES = ("binary_crossentropy", "binarycrossentropy", "binary_cross_entropy",
                 "binary_cross_entropy_with_logits", "binary_focal_crossentropy")

@dataclass(frozen=True)
class Thresholds:
    min_steps: int = 30  # trend rules need at least this many recorded steps
    explode_activation: float = 1e6  # |output| above this: exploding tensor
    explode_weight: float = 1e4  # |weight| above this
    unchanged_ratio: float = 1e-10  # ||dW|| / ||W|| below this at every step: unchanged
    slow_ratio: float = 1e-5  # median ||dW|| / ||W|| below this: learning rate too low
    high_ratio: float = 0.1  # median ||dW|| / ||W|| above this early on: learning rate too high
    saturated: float = 0.9  # fraction of sigmoid/tanh outputs within 0.01 of their bounds
    dead: float = 0.7  # fraction of ReLU units zero for the whole probe batch
    sustained: float = 0.5  # a symptom must hold in this fraction of the later steps
    vanishing_ratio: float = 1e-3  # first layer's gradient RMS / last layer's
    exploding_growth: float = 1e3  # gradient norm growth over its first value
    exploding_grad: float = 1e4  # |gradient| above this
    loss_progress: float = 0.02  # relative loss decrease below this: not decreasing
    acc_progress: float = 0.02  # accuracy gain below this: not increasing
    acc_good: float = 0.95  # accuracy at or above this counts as learnt
    input_scale: float = 3.0  # input std or |mean| above this: not normalized
    init_scale: tuple = (0.1, 5.0)  # std(W)*sqrt(fan_in) outside this: bad initializer

    @classmethod
    def from_dict(cls, d: dict | None) -> Thresholds:
        if not d:
            return cls()
        names = {f.name: f.type for f in fields(cls)}
        bad = [k for k in d if k.replace("-", "_") not in names]
        if bad:
            raise ValueError(
                f"unknown training threshold(s): {', '.join(bad)}; known: {', '.join(names)}"
            )
        kw: dict[str, Any] = {k.replace("-", "_"): (tuple(v) if isinstance(v, list) else v)
                              for k, v in d.items()}
        return cls(**kw)


# -- trace access ------------------------------------------------------------------------------
class View:
    """Convenient reads of a trace."""

    def __init__(self, trace: dict, th: Thresholds):
        self.t, self.th = trace, th
        self.meta = trace.get("meta") or {}
        self.layers = [la for la in trace.get("layers") or [] if la.get("type") or la.get("params")]
        self.steps = trace.get("steps") or []
        self.param_layers = [la for la in self.layers if (la.get("params") or 0) > 0]

    def series(self, layer: str, kind: str, stat: str) -> list[tuple[int, float]]:
        out = []
        for i, s in enumerate(self.steps):
            d = ((s.get("layers") or {}).get(layer) or {}).get(kind)
            if d and stat in d and d[stat] is not None:
                out.append((i, float(d[stat])))
        return out

    def losses(self) -> list[float]:
        return [s.get("loss") for s in self.steps if s.get("loss") is not None]

    def accuracy(self) -> list[float]:
        return [s["metrics"]["accuracy"] for s in self.steps
                if (s.get("metrics") or {}).get("accuracy") is not None]

    def update_ratio(self, layer: str) -> list[tuple[int, float]]:
        dw = dict(self.series(layer, "dw", "norm"))
        w = dict(self.series(layer, "w", "norm"))
        return [
            (i, dw[i] / w[i])
            for i in sorted(dw)
            if i in w and w[i] and finite(w[i]) and finite(dw[i])
        ]

    def median_ratio(self, early: bool = False) -> float | None:
        """The median ‖ΔW‖/‖W‖ over layers and steps; ``early``: of the first update against the
        initial weights (what the learning rate does to a fresh model, before any blow-up)."""
        vals = []
        for la in self.param_layers:
            if early:
                w0 = self.series(la["name"], "winit", "norm")
                dw = self.series(la["name"], "dw", "norm")
                if w0 and dw and w0[0][1] and finite(dw[0][1]):
                    vals.append(dw[0][1] / w0[0][1])
                    continue
                r = self.update_ratio(la["name"])[:3]
            else:
                r = self.update_ratio(la["name"])
            vals += [v for _, v in r]
        return _median(vals) if vals else None

    def rms(self, layer: str, kind: str) -> list[tuple[int, float]]:
        n = dict(self.series(layer, kind, "n"))
        return [(i, v / math.sqrt(n[i])) for i, v in self.series(layer, kind, "norm") if n.get(i)]

    def later(self, pts: list) -> list:
        """The second half of a series (symptoms must persist, not just start the run)."""
        return pts[len(pts) // 2:] if len(pts) >= 4 else pts

    def init_scale(self, layer: dict) -> float | None:
        """std(W)·√fan_in of the initial weights (about 1 for Glorot/He initializers)."""
        w = self.series(layer["name"], "winit", "std") or self.series(layer["name"], "w", "std")
        if not w or not layer.get("fan_in"):
            return None
        return w[0][1] * math.sqrt(layer["fan_in"])


def _median(v: list) -> float:
    s = sorted(v)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def _window_means(v: list, k: int) -> tuple[float, float]:
    k = max(1, min(k, len(v) // 2))
    head, tail = v[:k], v[-k:]
    return sum(head) / len(head), sum(tail) / len(tail)


# -- localization ------------------------------------------------------------------------------
def _loc(layer: dict | None) -> Location:
    if not layer or not layer.get("line"):
        return Location()
    return Location(file=layer.get("file"), line=int(layer["line"]))


def _site(meta: dict, key: str) -> Location:
    s = meta.get(key) or {}
    return Location(file=s.get("file"), line=int(s["line"])) if s.get("line") else Location()


def _loss_loc(meta: dict) -> Location:
    """Where the loss is set or computed: the compile call, the loss function's call, or (a
    hand-written loss) the line that calls backward()."""
    loc = _site(meta, "loss_site")
    return loc if loc.line else _site(meta, "backward_site")


NORMALIZE_INPUTS = (
    "normalize the inputs: (x - mean) / std (e.g. StandardScaler), or x / 255 for pixels"
)


def _lr_fix(v: View, direction: str) -> str:
    lr = v.meta.get("learning_rate")
    opt = str(v.meta.get("optimizer") or "").lower()
    adaptive = opt in ADAPTIVE
    if direction == "down":
        new = 1e-3 if adaptive else 1e-2
        if lr and new >= lr:
            new = lr / 10
    else:
        new = 1e-3 if adaptive else 1e-2
        if lr and new <= lr:
            new = lr * 10
    return f"learning_rate {lr:g} → {new:g}" if lr else f"set learning_rate to {new:g}"


def _bad_optimizer(v: View) -> str | None:
    c = v.meta.get("optimizer_config") or {}
    for k in ("momentum", "beta_1", "beta_2", "rho"):
        x = c.get(k)
        if isinstance(x, (int, float)) and not isinstance(x, bool) and (x >= 1 or x < 0):
            return f"{k} {x:g} → {0.999 if k == 'beta_2' else 0.9:g} (it must lie in [0, 1))"
    betas = c.get("betas")
    if isinstance(betas, (list, tuple)) and any(
        isinstance(b, (int, float)) and (b >= 1 or b < 0) for b in betas
    ):
        return f"betas {tuple(betas)} → (0.9, 0.999)"
    eps = c.get("epsilon", c.get("eps"))
    if isinstance(eps, (int, float)) and eps >= 1:
        return f"epsilon {eps:g} → 1e-07 (a large epsilon stalls the update)"
    wd = c.get("weight_decay")
    if isinstance(wd, (int, float)) and not isinstance(wd, bool) and wd >= 0.1:
        return f"weight_decay {wd:g} → 1e-4"
    return None


def hypothesis(v: View, symptom: str, layer: dict | None) -> tuple[str | None, str, dict, Location]:
    """The hyperparameter to blame for a symptom, the fix to try, the evidence, and where the
    hyperparameter is set (a layer's line, the optimizer's, the loss's, the fit call's)."""
    ev: dict = {}
    early = v.median_ratio(early=True)
    ratio = v.median_ratio()
    if early is not None:
        ev["update_ratio_early"] = early
    if ratio is not None:
        ev["update_ratio"] = ratio
    opt_fix = _bad_optimizer(v)
    lr = v.meta.get("learning_rate")
    if lr is not None:
        ev["learning_rate"] = lr
    scales = [
        x
        for x in (v.init_scale(la) for la in ([layer] if layer else v.param_layers))
        if x is not None
    ]
    scale = max(scales) if scales else None
    if scale is not None:
        ev["init_scale"] = scale
    acts = [la.get("activation") for la in v.param_layers[:-1]]
    sat_hidden = [a for a in acts if a in ("sigmoid", "tanh")]
    if sat_hidden and layer is None:  # a run-level symptom: point at the first saturating layer
        layer = next(
            la for la in v.param_layers[:-1] if la.get("activation") in ("sigmoid", "tanh")
        )
    input_bad = _input_unnormalized(v)
    opt_loc, fit_loc = _site(v.meta, "optimizer_site"), _site(v.meta, "fit_site")
    if opt_fix:
        return (
            "optimizer",
            opt_fix,
            {**ev, "optimizer_config": v.meta.get("optimizer_config")},
            opt_loc,
        )
    if symptom in ("nan", "explode", "explode_grad", "dead", "oscillate"):
        # an initializer far off the fan-in scaling explains huge first updates too: it goes first
        if scale is not None and scale > v.th.init_scale[1]:
            return (
                "initializer",
                f"initializer → {'he_normal' if symptom == 'dead' else 'glorot_uniform'} "
                f"(std(W)·√fan_in is {scale:.3g}, expected about 1)",
                ev,
                _loc(layer),
            )
        # inputs far outside [-1, 1] make the first updates huge too: they explain a high update
        # ratio, so they go before the learning rate (which stays the ranked alternative)
        if input_bad:
            alt = [{"fix": _lr_fix(v, "down"), "hyperparameter": "learning_rate"}] \
                if early is not None and early > v.th.high_ratio else []
            return "data", NORMALIZE_INPUTS, \
                {**ev, **input_bad, **({"alternatives": alt} if alt else {})}, fit_loc
        if early is not None and early > v.th.high_ratio:
            return "learning_rate", _lr_fix(v, "down"), ev, opt_loc
        if symptom == "oscillate" and (v.meta.get("batch_size") or 0) == 1:
            return "batch_size", "batch_size 1 → 32", {**ev, "batch_size": 1}, fit_loc
        if symptom == "dead":
            return (
                "activation",
                "relu → leaky_relu (or he_normal initialization with a lower learning rate)",
                ev,
                _loc(layer),
            )
        if symptom == "nan" and lr is not None:
            return "learning_rate", _lr_fix(v, "down"), ev, opt_loc
        return "learning_rate", _lr_fix(v, "down"), ev, opt_loc
    if symptom in ("vanish", "saturate"):
        if sat_hidden:
            return (
                "activation",
                f"{sat_hidden[0]} → relu in the hidden layers (keep sigmoid/softmax on the "
                f"output only), with he_normal initialization",
                {**ev, "hidden_activations": acts},
                _loc(layer),
            )
        if scale is not None and scale < v.th.init_scale[0]:
            return (
                "initializer",
                f"initializer → he_normal (std(W)·√fan_in is {scale:.3g}, expected about 1)",
                ev,
                _loc(layer),
            )
        return (
            "activation",
            "use relu hidden activations with he_normal initialization, or add BatchNormalization",
            ev,
            _loc(layer),
        )
    if symptom in ("flat", "slow", "unchanged"):
        if ratio is not None and ratio < v.th.slow_ratio:
            return "learning_rate", _lr_fix(v, "up"), ev, opt_loc
        if input_bad:
            return "data", NORMALIZE_INPUTS, {**ev, **input_bad}, fit_loc
        if sat_hidden:
            return (
                "activation",
                f"{sat_hidden[0]} → relu in the hidden layers",
                {**ev, "hidden_activations": acts},
                _loc(layer),
            )
        if early is not None and early > v.th.high_ratio:
            return "learning_rate", _lr_fix(v, "down"), ev, opt_loc
        if ratio is not None and v.th.slow_ratio * 10 <= ratio <= v.th.high_ratio:
            # the weights move at a normal rate, yet nothing is learnt: the learning rate is not
            # what the evidence points at; the data is (labels not aligned with the inputs,
            # constant or uninformative), with the learning rate as the ranked alternative
            return (
                "data",
                "check the labels against the inputs (shuffled together, the right column, not "
                "constant): the weights move normally but nothing is learnt",
                {
                    **ev,
                    "alternatives": [{"fix": _lr_fix(v, "up"), "hyperparameter": "learning_rate"}],
                },
                fit_loc,
            )
        return "learning_rate", _lr_fix(v, "up"), ev, opt_loc
    return None, "", ev, Location()


def _input_unnormalized(v: View) -> dict | None:
    m = v.meta
    std, mean = m.get("input_std"), m.get("input_mean")
    if std is None or mean is None:
        return None
    if std > v.th.input_scale or abs(mean) > v.th.input_scale:
        return {
            "input_min": m.get("input_min"),
            "input_max": m.get("input_max"),
            "input_mean": mean,
            "input_std": std,
        }
    return None


def _first(v: View, pred) -> tuple[int, dict] | None:
    """The layer whose symptom starts earliest (ties: the first in forward order)."""
    best = None
    for la in v.layers:
        for i, s in enumerate(v.steps):
            d = (s.get("layers") or {}).get(la["name"])
            if d and pred(la, d):
                if best is None or i < best[0]:
                    best = (i, la)
                break
    return best


def _finding(
    rule: R.Rule,
    message: str,
    layer: dict | None,
    v: View,
    symptom: str | None,
    evidence: dict,
    fix: str | None = None,
    loc: Location | None = None,
    hp: str | None = None,
) -> Finding:
    if symptom is not None:
        hp, hfix, hev, hloc = hypothesis(v, symptom, layer)
        evidence = {**hev, **evidence}
        fix = fix or hfix
        if hp in ("learning_rate", "optimizer", "data", "batch_size") or loc is None:
            loc = hloc if hloc.line else (loc or _loc(layer))
    location = loc if loc is not None else _loc(layer)
    if layer and layer.get("line") and not location.line:
        location = _loc(layer)
    repair = Repair("change-hyperparameter", fix) if fix else None
    msg = message + (f"; likely cause: {hp} — try {fix}" if hp and fix else "")
    return Finding(
        rule.code,
        rule.severity,
        rule.stage,
        msg,
        layer=(layer or {}).get("name"),
        location=location,
        hyperparameter=hp,
        evidence=evidence,
        repair=repair,
    )


# -- the rules ---------------------------------------------------------------------------------
def _nonfinite(v: View) -> list[Finding]:
    out = []
    losses = [(i, s.get("loss")) for i, s in enumerate(v.steps) if s.get("loss") is not None]
    bad_loss = next(((i, x) for i, x in losses if not finite(x)), None)
    fwd = _first(
        v, lambda la, d: any((d.get(k) or {}).get("frac_nonfinite", 0) > 0 for k in ("pre", "post"))
    )
    wts = _first(
        v,
        lambda la, d: any((d.get(k) or {}).get("frac_nonfinite", 0) > 0 for k in ("w", "dw", "gw")),
    )
    if fwd:
        i, la = fwd
        d = v.steps[i]["layers"][la["name"]]
        where = "before its activation" if (d.get("pre") or {}).get("frac_nonfinite", 0) > 0 else \
            f"after its activation ({la.get('activation')})"
        out.append(
            _finding(
                R.TRAIN_NONFINITE_FORWARD,
                f"{la['name']} outputs NaN/Inf {where} from step "
                f"{v.steps[i]['step']}, the first layer to do so",
                la,
                v,
                "nan",
                {
                    "step": v.steps[i]["step"],
                    "frac_nonfinite": (d.get("pre") or d.get("post") or {}).get("frac_nonfinite"),
                },
            )
        )
    if wts:
        i, la = wts
        d = v.steps[i]["layers"][la["name"]]
        what = next(k for k in ("gw", "dw", "w") if (d.get(k) or {}).get("frac_nonfinite", 0) > 0)
        name = {"w": "weights", "dw": "weight update", "gw": "weight gradient"}[what]
        out.append(
            _finding(
                R.TRAIN_NONFINITE_WEIGHTS,
                f"the {name} of {la['name']} became NaN/Inf at step {v.steps[i]['step']}",
                la,
                v,
                "nan",
                {"step": v.steps[i]["step"], "tensor": what},
            )
        )
    if bad_loss:
        i, x = bad_loss
        step = v.steps[i]["step"]
        # Keras records a step's layers after its update, and its loss before: same index = later
        after = (lambda j: j >= i) if v.meta.get("framework") == "keras" else (lambda j: j > i)
        if not fwd or after(fwd[0]):
            # the forward pass was finite (as far as recorded) when the loss broke: the loss itself
            custom = str(v.meta.get("loss") or "custom").lower() in (
                "custom",
                "none",
                "<lambda>",
            ) or not v.meta.get("loss")
            out_min, out_max = v.meta.get("output_min"), v.meta.get("output_max")
            fix = (
                "compute the loss from logits (from_logits=True / BCEWithLogitsLoss / "
                "CrossEntropyLoss), or clamp the log's argument: log(clip(p, 1e-7, 1)); guard "
                "divisions with + eps"
            )
            hp = "loss"
            ev = {
                "step": step,
                "loss": str(x),
                "loss_fn": v.meta.get("loss"),
                "output_min": out_min,
                "output_max": out_max,
            }
            early = v.median_ratio(early=True)
            if early is not None and early > v.th.high_ratio and not custom:
                out.append(
                    _finding(
                        R.TRAIN_INVALID_LOSS,
                        f"the loss is {x} from step {step}",
                        None,
                        v,
                        "nan",
                        ev,
                    )
                )
            else:
                out.append(
                    _finding(
                        R.TRAIN_INVALID_LOSS,
                        f"the loss is {x} from step {step} while every recorded "
                        "layer output is finite: the loss computation itself (log(0), 0/0)",
                        None,
                        v,
                        None,
                        ev,
                        fix=fix,
                        loc=_loss_loc(v.meta),
                        hp=hp,
                    )
                )
        else:
            out.append(
                _finding(
                    R.TRAIN_INVALID_LOSS,
                    f"the loss is {x} from step {step}, after {fwd[1]['name']} produced NaN/Inf",
                    fwd[1],
                    v,
                    "nan",
                    {"step": step},
                )
            )
    acc = [(s["step"], (s.get("metrics") or {}).get("accuracy")) for s in v.steps]
    bad_acc = next(
        (
            (st, a)
            for st, a in acc
            if a is not None and (not finite(a) or a < -1e-6 or a > 1 + 1e-6)
        ),
        None,
    )
    if bad_acc:
        out.append(
            _finding(
                R.TRAIN_INVALID_ACCURACY,
                f"the accuracy is {bad_acc[1]} at step {bad_acc[0]}",
                None,
                v,
                None,
                {"step": bad_acc[0]},
                fix="check the metric and the labels' encoding",
                hp=None,
            )
        )
    return out


def _exploding(v: View) -> list[Finding]:
    th = v.th
    hit = _first(
        v,
        lambda la, d: (
            any((d.get(k) or {}).get("absmax", 0) > th.explode_activation for k in ("pre", "post"))
            or (d.get("w") or {}).get("absmax", 0) > th.explode_weight
        ),
    )
    out = []
    if hit:
        i, la = hit
        d = v.steps[i]["layers"][la["name"]]
        mx = max((d.get(k) or {}).get("absmax", 0) for k in ("pre", "post", "w"))
        out.append(
            _finding(
                R.TRAIN_EXPLODING_TENSOR,
                f"{la['name']} reaches |x| = {mx:.3g} at step {v.steps[i]['step']}",
                la,
                v,
                "explode",
                {"step": v.steps[i]["step"], "absmax": mx},
            )
        )
    # exploding gradients: growth over the first recorded value, or huge magnitudes
    best = None
    early = _early_grad_scale(v)
    for la in v.param_layers:
        g = v.series(la["name"], "gw", "norm")
        g = [(i, x) for i, x in g if finite(x)]
        if len(g) < 2:
            continue
        # growth against the run's own scale (the larger of the first value and the median), not
        # against tiny initial gradients that grow as a fresh model starts to learn
        g0 = max(g[0][1], _median([x for _, x in g]))
        for i, x in g[1:]:
            d = (v.steps[i]["layers"].get(la["name"]) or {}).get("gw") or {}
            am = d.get("absmax", 0)
            # a layer whose gradient starts near zero (attention at a uniform softmax) grows to
            # the scale the other layers had from the start: learning, not exploding
            big = early is None or _rms(d, x) > 10 * early
            if (g0 > 0 and x / g0 > th.exploding_growth and big) or am > th.exploding_grad:
                if best is None or i < best[0]:
                    best = (i, la, x / g0 if g0 else float("inf"), am)
                break
    if best:
        i, la, growth, am = best
        out.append(
            _finding(
                R.TRAIN_EXPLODING_GRAD,
                f"the gradient of {la['name']} grew {growth:.3g}x by step "
                f"{v.steps[i]['step']} (max |g| {am:.3g})",
                la,
                v,
                "explode_grad",
                {"step": v.steps[i]["step"], "growth": growth, "grad_absmax": am},
            )
        )
    return out


def _rms(d: dict, norm: float) -> float:
    n = d.get("n")
    return norm / math.sqrt(n) if n else norm


def _early_grad_scale(v: View) -> float | None:
    """The run's own gradient scale before any blow-up: the largest per-layer median gradient
    RMS over the first quarter of the recorded steps (at least 3)."""
    k = max(3, len(v.steps) // 4)
    meds = []
    for la in v.param_layers:
        vals = [_rms(((s.get("layers") or {}).get(la["name"]) or {}).get("gw") or {}, x)
                for i, x in v.series(la["name"], "gw", "norm") if i < k and finite(x)
                for s in [v.steps[i]]]
        if vals:
            meds.append(_median(vals))
    return max(meds) if meds else None


def _per_layer(v: View) -> list[Finding]:
    th = v.th
    out = []
    hidden = v.param_layers[:-1]
    hidden_names = {la["name"] for la in hidden}
    # unchanged weights
    if len(v.steps) >= 3:
        for la in v.param_layers:
            r = v.update_ratio(la["name"])[1:]
            if len(r) >= 2 and all(x < th.unchanged_ratio for _, x in r):
                out.append(
                    _finding(
                        R.TRAIN_UNCHANGED_WEIGHTS,
                        f"the weights of {la['name']} do not change "
                        f"(||ΔW||/||W|| ≤ {max(x for _, x in r):.2g} over {len(r)} steps)",
                        la,
                        v,
                        "unchanged",
                        {"max_update_ratio": max(x for _, x in r)},
                    )
                )
                break
    # saturated sigmoid/tanh, dead ReLU: the first layer where it persists
    for rule, stat, limit, acts, symptom, what in (
        (
            R.TRAIN_SATURATED,
            "frac_sat",
            th.saturated,
            ("sigmoid", "tanh"),
            "saturate",
            "saturated outputs",
        ),
        (R.TRAIN_DEAD_RELU, "frac_dead", th.dead, ("relu", "leaky_relu"), "dead", "dead units"),
    ):
        found = None
        for la in v.layers:
            if la["name"] not in hidden_names or la.get("activation") not in acts:
                continue
            pts = v.later(v.series(la["name"], "post", stat))
            if len(pts) >= 2 and sum(x >= limit for _, x in pts) >= th.sustained * len(pts):
                start = next(i for i, x in v.series(la["name"], "post", stat) if x >= limit)
                if found is None or start < found[0]:
                    found = (start, la, _median([x for _, x in pts]))
        if found:
            start, la, med = found
            out.append(
                _finding(
                    rule,
                    f"{la['name']} ({la.get('activation')}): {med:.0%} {what} from step "
                    f"{v.steps[start]['step']} on",
                    la,
                    v,
                    symptom,
                    {"step": v.steps[start]["step"], stat: med},
                )
            )
    # vanishing gradient: first layer's gradient RMS against the last layer's
    if len(v.param_layers) >= 3:
        first, last = v.param_layers[0], v.param_layers[-1]
        pts = v.later(_grad_ratios(v, first["name"]))
        if len(pts) >= 2 and sum(x < th.vanishing_ratio for _, x in pts) >= th.sustained * len(pts):
            med = _median([x for _, x in pts])
            out.append(
                _finding(
                    R.TRAIN_VANISHING,
                    f"the gradient reaching {first['name']} is {med:.2g} of "
                    f"{last['name']}'s (RMS ratio over {len(v.param_layers)} layers)",
                    first,
                    v,
                    "vanish",
                    {"grad_rms_ratio": med, "depth": len(v.param_layers)},
                )
            )
    return out


def _trends(v: View, faulty: bool) -> list[Finding]:
    th = v.th
    out = []
    losses = [x for x in v.losses() if finite(x)]
    if len(losses) < th.min_steps:
        return out
    k = max(2, len(losses) // 5)
    head, tail = _window_means(losses, k)
    rel = (head - tail) / abs(head) if head else 0.0
    acc = [a for a in v.accuracy() if finite(a)]
    acc_flat = acc_gain = None
    if len(acc) >= th.min_steps:
        a0, a1 = _window_means(acc, max(2, len(acc) // 5))
        acc_gain = a1 - a0
        acc_flat = acc_gain < th.acc_progress and a1 < th.acc_good
    loss_flat = rel < th.loss_progress and not (acc and _window_means(acc, k)[1] >= th.acc_good)
    chance = _chance(v, acc, losses, k)
    ev = {"loss_first": head, "loss_last": tail, "relative_decrease": rel}
    if acc_gain is not None:
        ev.update(accuracy_gain=acc_gain, accuracy_last=_window_means(acc, k)[1])
    # oscillation: the smoothed loss swings up and down by a large amount and does not converge
    w = max(1, len(losses) // 20)
    sm = [sum(losses[i:i + w]) / w for i in range(0, len(losses) - w + 1, w)]
    diffs = [b - a for a, b in zip(sm, sm[1:], strict=False)]
    flips = sum(1 for a, b in zip(diffs, diffs[1:], strict=False) if a * b < 0)
    amp = (sum(abs(d) for d in diffs) / len(diffs)) / (abs(sum(sm) / len(sm)) or 1) if diffs else 0
    oscillating = len(diffs) >= 6 and flips >= 0.5 * (len(diffs) - 1) and amp > 0.25 and rel < 0.5
    if faulty:  # a numerical fault explains the trend; do not pile on
        return out
    ratio = v.median_ratio()
    if oscillating:
        out.append(
            _finding(
                R.TRAIN_OSCILLATING,
                f"the loss swings by {amp:.0%} of its mean between windows "
                f"({flips} reversals in {len(diffs)} windows)",
                None,
                v,
                "oscillate",
                {**ev, "reversals": flips, "amplitude": amp},
            )
        )
    if chance:
        out.append(
            _finding(
                R.TRAIN_NOT_LEARNING,
                f"the model does not learn: {chance[0]}",
                None,
                v,
                "flat",
                {**ev, **chance[1]},
            )
        )
    elif loss_flat and (acc_flat is None or acc_flat):
        what = "the loss does not decrease" + (
            " and the accuracy does not increase" if acc_flat else ""
        )
        out.append(_finding(R.TRAIN_NOT_LEARNING, f"the model does not learn: {what} "
                            f"(loss {head:.4g} → {tail:.4g})", None, v, "flat", ev))
    elif loss_flat:
        out.append(
            _finding(
                R.TRAIN_LOSS_FLAT,
                f"the loss does not decrease ({head:.4g} → {tail:.4g})",
                None,
                v,
                "flat",
                ev,
            )
        )
    elif acc_flat:
        out.append(
            _finding(
                R.TRAIN_ACC_FLAT,
                f"the accuracy does not increase (gain {acc_gain:+.3f})",
                None,
                v,
                "flat",
                ev,
            )
        )
    elif ratio is not None and ratio < th.slow_ratio and rel < 0.3:
        out.append(
            _finding(
                R.TRAIN_SLOW,
                f"the weights move {ratio:.2g} of their norm per step; the loss fell only "
                f"{rel:.0%}",
                None,
                v,
                "slow",
                {**ev, "update_ratio": ratio},
            )
        )
    return out


def _chance(v: View, acc: list, losses: list, k: int) -> tuple[str, dict] | None:
    """What the data allows: an accuracy at the majority class's rate, or a regression loss at
    the targets' variance (what predicting the mean gives), at the end of the run."""
    m = v.meta
    maj = m.get("majority_rate")
    if acc and maj is not None and finite(maj) and len(acc) >= v.th.min_steps:
        last = _window_means(acc, k)[1]
        if last <= maj + 0.02 and maj < 0.9:
            return (
                f"its accuracy {last:.3f} is no better than always predicting the majority class "
                f"({maj:.3f})",
                {"majority_rate": maj, "accuracy_last": last},
            )
    std = m.get("label_std")
    loss = str(m.get("loss") or "").lower()
    if (
        std is not None
        and finite(std)
        and std > 0
        and loss in ("mse_loss", "mean_squared_error", "mse", "meansquarederror")
        and m.get("labels") == "real"
    ):
        last = _window_means(losses, k)[1]
        if last >= 0.9 * std * std:
            return (f"its loss {last:.4g} is no better than predicting the targets' mean (variance "
                    f"{std * std:.4g})", {"target_variance": std * std, "loss_last": last})
    return None


def _setup(v: View) -> list[Finding]:
    """Faults of the training set-up that are certain from the model and the compiled loss."""
    m = v.meta
    out = []
    loss = str(m.get("loss") or "").lower().replace(" ", "")
    act = m.get("output_activation")
    if act is None and v.param_layers:
        act = v.param_layers[-1].get("activation")
    act = (act or "linear").lower()
    units = m.get("output_units") or m.get("num_classes")
    logits = m.get("from_logits")
    labels = m.get("labels")
    loc = _loss_loc(m)
    last = v.param_layers[-1] if v.param_layers else None
    last_loc = _loc(last) if last else loc
    is_bin = loss in BINARY_LOSSES or "binary" in loss
    if act == "softmax" and is_bin and "logits" not in loss:
        one = units == 1
        out.append(
            Finding(
                R.TRAIN_SOFTMAX_BCE.code,
                "error" if one else "warning",
                "loss",
                f"softmax output{' over a single unit (always 1.0)' if one else ''} trained with "
                f"{m.get('loss')}",
                layer=(last or {}).get("name"),
                location=last_loc,
                hyperparameter="loss",
                evidence={
                    "output_activation": act,
                    "output_units": units,
                    "loss": m.get("loss"),
                    **(
                        {"fix_edit": {"kind": "activation", "old": "softmax", "new": "sigmoid"}}
                        if one
                        else {}
                    ),
                },
                repair=Repair(
                    "change-hyperparameter",
                    "sigmoid + binary_crossentropy (one unit), or softmax "
                    "+ categorical_crossentropy (one unit per class)",
                ),
            )
        )
    if (
        act in ("relu", "linear", "none", "identity")
        and loss in PROB_LOSSES
        and logits is False
        and (v.meta.get("framework") == "keras" or loss in ("binary_cross_entropy", "nll_loss"))
    ):
        fix = (
            "from_logits=True in the loss, or a softmax (sigmoid for one unit) output activation"
            if v.meta.get("framework") == "keras"
            else "BCEWithLogitsLoss / CrossEntropyLoss on the raw outputs, or a "
            "sigmoid/log_softmax output"
        )
        out.append(
            Finding(
                R.TRAIN_OUTPUT_NOT_PROB.code,
                R.TRAIN_OUTPUT_NOT_PROB.severity,
                "loss",
                f"the output activation is {act}, but {m.get('loss')} expects probabilities",
                layer=(last or {}).get("name"),
                location=last_loc,
                hyperparameter="activation",
                evidence={"output_activation": act, "loss": m.get("loss"), "from_logits": logits},
                repair=Repair("change-hyperparameter", fix),
            )
        )
    if (
        act == "sigmoid"
        and (units or 0) > 1
        and (
            loss
            in (
                "categorical_crossentropy",
                "sparse_categorical_crossentropy",
                "categoricalcrossentropy",
                "sparsecategoricalcrossentropy",
            )
        )
        and labels in ("onehot", "index", None)
    ):
        out.append(
            Finding(
                R.TRAIN_SIGMOID_MULTICLASS.code,
                R.TRAIN_SIGMOID_MULTICLASS.severity,
                "loss",
                f"sigmoid over {units} classes with {m.get('loss')}: the outputs are not a "
                f"distribution",
                layer=(last or {}).get("name"),
                location=last_loc,
                hyperparameter="activation",
                evidence={"output_activation": act, "output_units": units, "loss": m.get("loss")},
                repair=Repair("change-hyperparameter", "softmax + categorical_crossentropy"),
            )
        )
    if (
        logits is True
        and act in ("softmax", "sigmoid")
        and m.get("framework") == "torch"
        and (last or {}).get("activation_module")
    ):  # an nn.Softmax/nn.Sigmoid module after the output
        cls = {"softmax": "Softmax", "sigmoid": "Sigmoid"}[act]
        out.append(
            Finding(
                R.TRAIN_FROM_LOGITS.code,
                R.TRAIN_FROM_LOGITS.severity,
                "loss",
                f"the output already goes through {act}, and {m.get('loss')} applies it again",
                layer=(last or {}).get("name"),
                location=last_loc if last_loc.line else loc,
                hyperparameter="loss",
                evidence={
                    "output_activation": act,
                    "from_logits": True,
                    "loss": m.get("loss"),
                    "fix_edit": {"kind": "drop-module", "classes": [cls], "act": act},
                },
                repair=Repair(
                    "change-hyperparameter",
                    f"drop the nn.{cls} after the output layer: "
                    f"{m.get('loss')} takes logits (from_logits=True) and applies "
                    f"{act} itself",
                ),
            )
        )
    elif logits is True and act in ("softmax", "sigmoid"):
        out.append(
            Finding(
                R.TRAIN_FROM_LOGITS.code,
                R.TRAIN_FROM_LOGITS.severity,
                "loss",
                f"from_logits=True, but the output already goes through {act}",
                layer=(last or {}).get("name"),
                location=loc if loc.line else last_loc,
                hyperparameter="loss",
                evidence={"output_activation": act, "from_logits": True},
                repair=Repair(
                    "change-hyperparameter",
                    f"from_logits=False (keep {act}), or a linear output with from_logits=True",
                ),
            )
        )
    if logits is True and act in ("relu", "relu6"):  # logits clipped at 0: dead units never recover
        mod = {"relu": ["ReLU"], "relu6": ["ReLU6"]}[act]
        out.append(Finding(
            R.TRAIN_FROM_LOGITS.code, R.TRAIN_FROM_LOGITS.severity, "loss",
            f"the output layer ends in {act}, but {m.get('loss')} takes logits (any real value): "
            f"{act} clips them at 0, and an output unit that dies gets no gradient again",
            layer=(last or {}).get("name"), location=last_loc if last_loc.line else loc,
            hyperparameter="activation",
            evidence={"output_activation": act, "from_logits": True, "loss": m.get("loss"),
                      "fix_edit": {"kind": "drop-module", "classes": mod, "act": act}},
            repair=Repair("change-hyperparameter",
                          f"drop the {act} after the output layer: pass the raw logits to the loss "
                          "(a linear output)")))
    # output range against the labels (regression and binary labels)
    lmin, lmax = m.get("label_min"), m.get("label_max")
    rng = {"sigmoid": (0, 1), "softmax": (0, 1), "tanh": (-1, 1), "relu": (0, math.inf)}.get(act)
    if (
        rng
        and lmin is not None
        and lmax is not None
        and labels == "real"
        and (lmin < rng[0] - 1e-6 or lmax > rng[1] + 1e-6)
    ):
        out.append(
            Finding(
                R.TRAIN_OUTPUT_RANGE.code,
                R.TRAIN_OUTPUT_RANGE.severity,
                "loss",
                f"the output activation {act} ranges over {rng}, but the labels span [{lmin:g}, "
                f"{lmax:g}]",
                layer=(last or {}).get("name"),
                location=last_loc,
                hyperparameter="activation",
                evidence={
                    "output_activation": act,
                    "label_min": lmin,
                    "label_max": lmax,
                    "fix_edit": {"kind": "activation", "old": act, "new": "linear"},
                },
                repair=Repair(
                    "change-hyperparameter",
                    "a linear output for regression (or scale the labels "
                    "into the activation's range)",
                ),
            )
        )
    bad = _input_unnormalized(v)
    if bad:
        out.append(
            Finding(
                R.TRAIN_UNNORMALIZED.code,
                R.TRAIN_UNNORMALIZED.severity,
                "data",
                f"the inputs span [{bad['input_min']:.3g}, {bad['input_max']:.3g}] (mean "
                f"{bad['input_mean']:.3g}, std {bad['input_std']:.3g}), far outside [-1, 1]",
                layer=None,
                location=_site(m, "fit_site"),
                hyperparameter="data",
                evidence=bad,
                repair=Repair("change-hyperparameter", NORMALIZE_INPUTS),
            )
        )
    return out


def findings(trace: dict, thresholds: Thresholds | None = None) -> list[Finding]:
    """Every finding of a trace: root causes (structural, labels, set-up) first, each with the
    symptoms it explains as evidence (``causes.fold``), then what no root cause explains."""
    v = View(trace, thresholds or Thresholds())
    out = causes.labels(v.meta, v.param_layers)
    out += [f for f in _setup(v) if not (f.rule == "CL514" and any(g.rule == "CL535" for g in out))]
    setup_error = any(f.severity == "error" for f in out)
    numeric = _nonfinite(v)
    out += numeric
    out += _exploding(v)
    faulty = setup_error or bool(numeric) or any(f.rule in ("CL510", "CL520") for f in out)
    if not numeric:
        out += _per_layer(v)
    out += _trends(v, faulty)
    meta = dict(v.meta)
    partial = _partly_unchanged(v)
    if partial:
        s = dict(meta.get("structure") or {})
        s["no_grad"] = sorted({*(s.get("no_grad") or []), *partial})
        meta["structure"] = s
    out = causes.structural(meta, v.layers, v.param_layers, {f.rule for f in out}) + out
    seen, uniq = set(), []
    for f in out:
        if (f.rule, f.layer) not in seen:
            seen.add((f.rule, f.layer))
            uniq.append(f)
    return causes.fold(_explains_failure(v, uniq))


# warnings whose cause, when training ends short of learnt, explains it (the verdict is faulty)
EXPLAINING = ("CL536", "CL534", "CL512", "CL513")


def _ended_short(v: View) -> dict | None:
    """How the run ended short of learnt: its final accuracy below ``acc_good``, or a regression
    loss above a tenth of the targets' variance (R² below 0.9); None when it learnt or when there
    is too little to tell."""
    acc = [a for a in v.accuracy() if finite(a)]
    if len(acc) >= v.th.min_steps:
        last = _window_means(acc, max(2, len(acc) // 5))[1]
        return {"accuracy_last": last} if last < v.th.acc_good else None
    losses = [x for x in v.losses() if finite(x)]
    std, loss = v.meta.get("label_std"), str(v.meta.get("loss") or "").lower()
    if len(losses) >= v.th.min_steps and std and finite(std) and v.meta.get("labels") == "real" \
            and loss in ("mse_loss", "mean_squared_error", "mse", "meansquarederror"):
        last = _window_means(losses, max(2, len(losses) // 5))[1]
        r2 = 1 - last / (std * std)
        return {"r2_last": r2} if r2 < 0.9 else None
    return None


def _explains_failure(v: View, out: list[Finding]) -> list[Finding]:
    """A run that ended short of learnt, with no root-cause error to say why, is faulty when a
    warning's
    cause explains it (inputs far outside [-1, 1], saturated or dead hidden units): that warning
    becomes the error (before the symptom errors it explains, such as CL505), with how the run
    ended as its evidence."""
    if any(f.severity == "error" and f.rule not in causes.SYMPTOMS for f in out):
        return out
    i = next(
        (k for k, f in enumerate(out) if f.rule in EXPLAINING and f.severity == "warning"), None
    )
    short = _ended_short(v) if i is not None else None
    if i is None or short is None:
        return out
    f = out[i]
    how = ", ".join(f"{k} {x:.3g}" for k, x in short.items())
    f = f.with_(severity="error", message=f"{f.message}; training ended short of learnt ({how}), "
                "which this explains", evidence={**f.evidence, "ended_short": short})
    return [f, *out[:i], *out[i + 1:]]


def _partly_unchanged(v: View) -> list[str]:
    """Layers whose weights never move while other layers' do (a parameter that never trains)."""
    if len(v.steps) < 3 or len(v.param_layers) < 2:
        return []
    still, moving = [], 0
    for la in v.param_layers:
        r = v.update_ratio(la["name"])[1:]
        if _gradient_explains_stillness(v, la["name"]):
            continue
        if len(r) >= 2 and all(x == 0 for _, x in r):
            still.append(la["name"])
        elif r and any(x > v.th.unchanged_ratio for _, x in r):
            moving += 1
    return still if moving else []


def _gradient_explains_stillness(v: View, name: str) -> bool:
    """True when the layer's own gradient explains weights that never move: it is non-finite (the
    non-finite rules own that), or a vanishing fraction of the output layer's (the vanishing rule
    owns that). A gradient of normal size that never moves the weights is a structural cause."""
    if any(not finite(x) for _, x in v.rms(name, "gw")):
        return True
    nonzero = [x for _, x in _grad_ratios(v, name) if x > 0]
    return bool(nonzero) and _median(nonzero) < v.th.vanishing_ratio


def _grad_ratios(v: View, name: str) -> list[tuple[int, float]]:
    """(step index, the layer's gradient RMS over the output layer's) where both are finite and
    the output layer's is not zero: what the vanishing rule and the CL506 check read."""
    a, b = dict(v.rms(name, "gw")), dict(v.rms(v.param_layers[-1]["name"], "gw"))
    return [
        (i, a[i] / b[i]) for i in sorted(a) if i in b and b[i] > 0 and finite(a[i]) and finite(b[i])
    ]


def _final(trace: dict) -> dict:
    """The run's end (mean over the last fifth of the recorded steps: what --verify-fix compares)
    and the script lines where the optimizer, the fit call and the output layer are set."""
    v = View(trace, Thresholds())
    losses = [x for x in v.losses() if finite(x)]
    acc = [a for a in v.accuracy() if finite(a)]
    d: dict = {
        "loss_last": _window_means(losses, max(1, len(losses) // 5))[1]
        if len(losses) >= 2
        else None,
        "accuracy_last": _window_means(acc, max(1, len(acc) // 5))[1] if len(acc) >= 2 else None,
    }
    sites = {k: (v.meta.get(f"{k}_site") or {}).get("line") for k in ("optimizer", "fit", "loss")}
    if v.param_layers:
        sites["output"] = v.param_layers[-1].get("line")
    d["sites"] = {k: x for k, x in sites.items() if x}
    return d


def analyze(
    trace: dict,
    script: str,
    thresholds: Thresholds | None = None,
    extra: dict | None = None,
    crash: Finding | None = None,
) -> ScriptReport:
    """The training report (``kind: training``) of a trace."""
    fs = findings(trace, thresholds)
    if crash is not None:
        fs = [crash, *fs]
    if crash is not None and crash.rule == R.TRAIN_SCRIPT_FAILED.code:
        verdict = "crash"
    else:
        verdict = "faulty" if any(f.severity == "error" for f in fs) else "healthy"
    steps = trace.get("steps") or []
    summary = {
        "framework": (trace.get("meta") or {}).get("framework"),
        "steps_recorded": len(steps),
        "steps": (trace.get("end") or {}).get("steps", len(steps)),
        "stopped": (trace.get("end") or {}).get("stopped"),
        "layers": [la.get("name") for la in trace.get("layers") or []],
        **_final(trace),
    }
    return ScriptReport(
        script,
        verdict,
        tuple(fs),
        kind="training",
        extra={"training": {**summary, **(extra or {})}},
    )
