"""Root causes before symptoms: structural faults of the training loop (CL506-CL508) and of the
labels against the loss and the output layer (CL535-CL538), read from what the probes record
before and at the first steps; then one finding per root cause, the symptoms it explains folded
into its evidence.

Pure Python over the trace's meta and layers (``record.py``; the torch probe's
``StructureWatch`` and ``label_stats``, the Keras probe's ``_label_extra`` and
``_structure_meta``). The order in which causes are tried is documented in docs/training.md
("How the root cause is chosen").
"""

from __future__ import annotations

import re

from convlint.analyzers import rules as R
from convlint.analyzers.report.findings import Finding, Location, Repair

SPARSE = (
    "sparse_categorical_crossentropy",
    "sparsecategoricalcrossentropy",
    "cross_entropy",
    "nll_loss",
)
CATEGORICAL = ("categorical_crossentropy", "categoricalcrossentropy")
BINARY = (
    "binary_crossentropy",
    "binarycrossentropy",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "binary_focal_crossentropy",
)
# symptoms a root cause explains: folded into its finding instead of reported beside it
SYMPTOMS = (
    "CL501",
    "CL502",
    "CL503",
    "CL504",
    "CL505",
    "CL510",
    "CL511",
    "CL512",
    "CL513",
    "CL515",
    "CL516",
    "CL517",
    "CL520",
    "CL521",
    "CL522",
    "CL534",
)
# root causes, most certain first: the loop's structure, then labels/loss/output layer
STRUCTURAL = ("CL506", "CL507", "CL508")
SETUP = ("CL539", "CL535", "CL536", "CL537", "CL538", "CL530", "CL531", "CL532", "CL533", "CL514")
LEARNING_SYMPTOMS = ("CL505", "CL511", "CL515", "CL516", "CL522")


def _norm(loss) -> str:
    return str(loss or "").lower().replace(" ", "")


def _loc(layer: dict | None) -> Location:
    return (
        Location(file=layer.get("file"), line=int(layer["line"]))
        if layer and layer.get("line")
        else Location()
    )


def _site(meta: dict, *keys: str) -> Location:
    for k in keys:
        s = meta.get(k) or {}
        if s.get("line"):
            return Location(file=s.get("file"), line=int(s["line"]))
    return Location()


def _mk(
    rule: R.Rule,
    msg: str,
    layer: dict | None,
    loc: Location,
    hp: str | None,
    ev: dict,
    fix: str,
    alternatives: list | None = None,
    edit: dict | None = None,
) -> Finding:
    ev = dict(ev)
    if alternatives:
        ev["alternatives"] = alternatives
    if edit:
        ev["fix_edit"] = edit
    return Finding(
        rule.code,
        rule.severity,
        rule.stage,
        msg,
        layer=(layer or {}).get("name"),
        location=loc,
        hyperparameter=hp,
        evidence=ev,
        repair=Repair("change-hyperparameter", fix),
    )


# -- structural causes ---------------------------------------------------------------------------
def structural(meta: dict, layers: list, param_layers: list, symptoms: set) -> list[Finding]:
    """CL506-CL508 from the probes' ``structure`` meta (and layers whose weights never move)."""
    s = meta.get("structure") or {}
    out: list[Finding] = []
    by_name = {la["name"]: la for la in layers}
    last = param_layers[-1]["name"] if param_layers else None
    learning_failed = bool(symptoms & set(LEARNING_SYMPTOMS))
    opt_loc = _site(meta, "optimizer_site")
    bwd_loc = _site(meta, "backward_site", "loss_site")
    if s.get("accumulating", 0) >= 2:
        out.append(
            _mk(
                R.TRAIN_GRAD_ACCUMULATE,
                f"{s['accumulating']} of the first {s.get('checked_steps')} backward passes "
                f"started on the previous step's gradients: nothing clears them between "
                f"optimizer steps",
                None,
                bwd_loc,
                "optimizer",
                {"structure": s},
                "call optimizer.zero_grad() before loss.backward()",
                edit={"kind": "insert-zero-grad"},
            )
        )
    if s.get("zeroed_before_step", 0) >= 2:
        out.append(
            _mk(
                R.TRAIN_GRAD_ZEROED,
                f"at {s['zeroed_before_step']} of the first {s.get('checked_steps')} optimizer "
                f"steps the gradients were non-zero after backward and zero at step(): "
                f"zero_grad() runs between backward() and step()",
                None,
                bwd_loc,
                "optimizer",
                {"structure": s},
                "move optimizer.zero_grad() before loss.backward()",
                edit={"kind": "move-zero-grad"},
            )
        )
    um = s.get("untrained_model")
    if um and (learning_failed or s.get("all_no_grad")):
        loc = Location(file=um.get("file"), line=int(um["line"])) if um.get("line") else opt_loc
        out.append(
            _mk(
                R.TRAIN_NEVER_TRAINED,
                f"the model the training loop calls ({um.get('type')}"
                + (f", built at line {um['line']}" if um.get("line") else "")
                + ") is not the one the optimizer was given: none of its parameters is in any "
                "optimizer, so it never trains",
                None,
                loc,
                "optimizer",
                {"untrained_model": um, "structure": s},
                "give the optimizer the parameters of the model the loop trains (build the "
                "optimizer after the model, or do not re-create the model after it)",
            )
        )
        return out
    used = {la["name"] for la in layers if la.get("type")}
    reasons: dict[str, str] = {}
    for name in s.get("no_grad") or []:
        if name in used:  # used in the forward pass, yet no gradient came back: a detached path
            reasons.setdefault(
                name,
                "no gradient reaches it (the forward pass detaches it: .detach(), .data, "
                "torch.no_grad, a numpy round trip)",
            )
    if s.get("all_no_grad"):
        for la in param_layers:
            reasons.setdefault(la["name"], "no gradient reaches any parameter")
    for name in s.get("not_in_optimizer") or []:
        if name == last or learning_failed:
            reasons.setdefault(name, "its parameters are not passed to any optimizer")
    for name in s.get("frozen") or []:
        if name == last or learning_failed:
            reasons.setdefault(
                name, "all its parameters are frozen (requires_grad False / trainable False)"
            )
    if reasons:
        first = next((la for la in layers if la["name"] in reasons), None) or by_name.get(
            next(iter(reasons))
        )
        name = (first or {}).get("name") or next(iter(reasons))
        why = reasons[name]
        if "optimizer" in why:
            fix, kind = (
                "pass all the model's parameters to the optimizer (model.parameters())",
                "optimizer-params",
            )
        elif "frozen" in why:
            fix, kind = f"unfreeze {name} (requires_grad True / trainable True)", "unfreeze"
        else:
            fix, kind = (
                f"keep {name}'s output in the autograd graph (remove the .detach()/.data/no_grad)",
                "detach",
            )
        others = [n for n in reasons if n != name]
        msg = f"{name} never trains: {why}" + (
            f" (also: {', '.join(others[:5])})" if others else ""
        )
        out.append(
            _mk(
                R.TRAIN_NEVER_TRAINED,
                msg,
                first,
                _loc(first)
                if kind != "optimizer-params"
                else (opt_loc if opt_loc.line else _loc(first)),
                "layers",
                {"untrained": reasons, "structure": s},
                fix,
                edit={"kind": kind, "layer": name},
            )
        )
    return out


# -- labels and targets against the loss and the output layer --------------------------------------
def labels(meta: dict, param_layers: list) -> list[Finding]:
    """CL535-CL538: checked on the first batch's labels (PyTorch) or the fit data (Keras)."""
    m = meta
    loss = _norm(m.get("loss"))
    lmin, lmax = m.get("label_min"), m.get("label_max")
    units = m.get("output_units")
    kind = m.get("labels")
    integral = m.get("label_integral", kind in ("index", "binary", "onehot"))
    last = param_layers[-1] if param_layers else None
    act = (m.get("output_activation") or (last or {}).get("activation") or "linear").lower()
    out_loc = _loc(last) if last else _site(m, "loss_site")
    loss_loc = _site(m, "loss_site", "backward_site")
    fit_loc = _site(m, "fit_site", "loss_site")
    ev = {
        k: m.get(k)
        for k in (
            "loss",
            "labels",
            "label_min",
            "label_max",
            "label_distinct",
            "output_units",
            "output_activation",
        )
        if m.get(k) is not None
    }
    out: list[Finding] = []
    shape = _broadcast(m, loss)
    if shape is not None:
        ish, tsh = m["loss_input_shape"], m["loss_target_shape"]
        out.append(
            _mk(
                R.TRAIN_LOSS_SHAPE,
                f"{m.get('loss')} compares an output of shape {tuple(ish)} with a target of shape "
                f"{tuple(tsh)}: they broadcast to {tuple(shape)}, so every output is compared with "
                "every target and the model can only learn their mean",
                last,
                loss_loc,
                "loss",
                {**ev, "input_shape": ish, "target_shape": tsh, "broadcast_shape": shape},
                "make the output's shape the target's: squeeze the output's last axis "
                "(out.squeeze(-1) or out[:, 0])",
                alternatives=[
                    {"fix": "reshape the target to the output's shape (y.view(-1, 1))",
                     "hyperparameter": "data"}
                ],
            )
        )
        return out
    if lmin is None or lmax is None:
        return out
    nd = m.get("label_distinct")
    if (
        loss in ELEMENTWISE + ("mean_squared_error", "mse", "meansquarederror")
        and units == 1
        and integral
        and lmin == 0
        and nd is not None
        and 3 <= nd <= 20
        and nd == int(lmax) + 1
    ):  # a warning: it may be a count; it explains a run that ends short (rules._explains_failure)
        out.append(
            Finding(
                R.TRAIN_LABEL_ENCODING.code,
                "warning",
                R.TRAIN_LABEL_ENCODING.stage,
                f"the targets are the integers 0..{int(lmax)} (every one present, like class "
                f"indices), fitted by {m.get('loss')} with one output unit: a classifier trained "
                "as a regression on the class index",
                layer=(last or {}).get("name"),
                location=loss_loc,
                hyperparameter="loss",
                evidence={**ev, "label_distinct": nd},
                repair=Repair(
                    "change-hyperparameter",
                    f"one output unit per class ({nd}) and cross_entropy on the integer labels "
                    "(nn.CrossEntropyLoss / sparse_categorical_crossentropy)",
                ),
            )
        )
        return out
    sparse = loss in SPARSE
    if act == "softmax" and units == 1 and loss not in BINARY:  # with a binary loss: CL530
        binary = kind == "binary" or (integral and lmin >= 0 and lmax <= 1)
        new = "sigmoid" if binary else "linear"
        out.append(
            _mk(
                R.TRAIN_OUTPUT_WIDTH,
                "a softmax over a single output unit is always 1.0: the output "
                "cannot represent the targets",
                last,
                out_loc,
                "activation",
                ev,
                f"output activation softmax → {new} (one unit)",
                alternatives=[
                    {"fix": "one output unit per class with softmax", "hyperparameter": "layers"}
                ],
                edit={"kind": "activation", "old": "softmax", "new": new},
            )
        )
        return out
    if sparse and kind == "onehot" and m.get("framework") == "keras":
        out.append(
            _mk(
                R.TRAIN_LABEL_ENCODING,
                f"one-hot labels ({m.get('num_classes')} columns) with {m.get('loss')}, "
                "which expects class indices",
                None,
                loss_loc,
                "loss",
                ev,
                f"loss {m.get('loss')} → categorical_crossentropy",
                alternatives=[{"fix": "labels → y.argmax(-1)", "hyperparameter": "data"}],
                edit={
                    "kind": "loss",
                    "old": "sparse_categorical_crossentropy",
                    "new": "categorical_crossentropy",
                },
            )
        )
        return out
    if loss in CATEGORICAL and kind in ("index", "binary") and integral and (units or 0) > 1:
        out.append(
            _mk(
                R.TRAIN_LABEL_ENCODING,
                f"class indices ({lmin:g}..{lmax:g}) with {m.get('loss')}, which "
                "expects one-hot labels",
                None,
                loss_loc,
                "loss",
                ev,
                f"loss {m.get('loss')} → sparse_categorical_crossentropy",
                alternatives=[
                    {"fix": "labels → keras.utils.to_categorical(y)", "hyperparameter": "data"}
                ],
                edit={
                    "kind": "loss",
                    "old": "categorical_crossentropy",
                    "new": "sparse_categorical_crossentropy",
                },
            )
        )
        return out
    if (
        (sparse or loss in CATEGORICAL)
        and not integral
        and kind == "real"
        and (m.get("label_distinct") or 99) > 10
    ):
        out.append(
            _mk(
                R.TRAIN_LABEL_ENCODING,
                f"real-valued targets in [{lmin:.3g}, {lmax:.3g}] with the "
                f"classification loss {m.get('loss')}",
                None,
                loss_loc,
                "loss",
                ev,
                "a regression loss (mse) with a linear output",
            )
        )
        return out
    if sparse and integral:
        k = int(lmax) + 1
        if lmin < 0:
            out.append(
                _mk(
                    R.TRAIN_LABEL_RANGE,
                    f"class labels span [{lmin:g}, {lmax:g}], but {m.get('loss')} needs "
                    f"indices in [0, {units or 'C'})",
                    None,
                    fit_loc,
                    "data",
                    ev,
                    f"shift the labels by {-int(lmin)} so they start at 0",
                )
            )
        elif units is not None and k > units and units >= 1:
            one_based = lmin >= 1 and int(lmax) == units
            width = {"fix": f"output units {units} → {k}", "hyperparameter": "layers"}
            shift = {"fix": "labels - 1 (0-based class indices)", "hyperparameter": "data"}
            if one_based:
                out.append(
                    _mk(
                        R.TRAIN_LABEL_RANGE,
                        f"the labels run {lmin:g}..{lmax:g} (1-based) but the output has "
                        f"{units} units: class {int(lmax)} is outside [0, {units})",
                        None,
                        fit_loc,
                        "data",
                        ev,
                        "labels - 1 (0-based class indices)",
                        alternatives=[width],
                        edit={
                            "kind": "units",
                            "layer": (last or {}).get("name"),
                            "old": units,
                            "new": k,
                        },
                    )
                )
            else:
                out.append(
                    _mk(
                        R.TRAIN_OUTPUT_WIDTH,
                        f"the labels name {k} classes (0..{int(lmax)}) but the output "
                        f"layer has {units} unit{'s' if units != 1 else ''}",
                        last,
                        out_loc,
                        "layers",
                        ev,
                        f"output units {units} → {k}",
                        alternatives=[shift],
                        edit={
                            "kind": "units",
                            "layer": (last or {}).get("name"),
                            "old": units,
                            "new": k,
                        },
                    )
                )
    elif (
        loss in CATEGORICAL
        and kind == "onehot"
        and units
        and m.get("num_classes")
        and m["num_classes"] != units
    ):
        k = m["num_classes"]
        out.append(
            _mk(
                R.TRAIN_OUTPUT_WIDTH,
                f"the one-hot labels have {k} columns but the output layer has {units} units",
                last,
                out_loc,
                "layers",
                ev,
                f"output units {units} → {k}",
                edit={"kind": "units", "layer": (last or {}).get("name"), "old": units, "new": k},
            )
        )
    elif loss in BINARY and (lmin < -1e-6 or lmax > 1 + 1e-6):
        scale = lmax if lmin >= 0 else None
        fix = f"targets / {scale:g} (into [0, 1])" if scale else "binary targets in {0, 1}"
        out.append(
            _mk(
                R.TRAIN_LABEL_RANGE,
                f"{m.get('loss')} needs targets in [0, 1], but they span [{lmin:g}, {lmax:g}]",
                None,
                fit_loc,
                "data",
                ev,
                fix,
                alternatives=[
                    {
                        "fix": "a regression loss (mse) with a linear output",
                        "hyperparameter": "loss",
                    }
                ],
            )
        )
    if (
        m.get("framework") == "torch"
        and m.get("output_is_probability")
        and loss == "cross_entropy"
        and act not in ("softmax", "sigmoid", "log_softmax")
    ):  # a visible softmax output is CL533's
        out.append(
            _mk(
                R.TRAIN_DOUBLE_ACTIVATION,
                f"the outputs fed to {m.get('loss')} are already probabilities "
                "(every row is non-negative and sums to 1), and it applies log_softmax again",
                last,
                loss_loc,
                "loss",
                ev,
                "pass the logits to cross_entropy (drop the softmax before the loss)",
                alternatives=[{"fix": "nll_loss(torch.log(p), y)", "hyperparameter": "loss"}],
                edit={"kind": "drop-softmax"},
            )
        )
    return out


ELEMENTWISE = ("mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss")


def _broadcast(m: dict, loss: str) -> list[int] | None:
    """The shape an elementwise loss broadcasts its output and target to, when that is larger
    than both (PyTorch only warns: ``(N, 1)`` against ``(N,)`` gives ``(N, N)``); else None."""
    a, b = m.get("loss_input_shape"), m.get("loss_target_shape")
    if loss not in ELEMENTWISE or not a or not b or list(a) == list(b):
        return None
    n = max(len(a), len(b))
    a, b = [1] * (n - len(a)) + list(a), [1] * (n - len(b)) + list(b)
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b, strict=True)):
        return None  # not broadcastable: the loss raises, and the crash says so
    out = [max(x, y) for x, y in zip(a, b, strict=True)]

    def size(s: list[int]) -> int:
        k = 1
        for x in s:
            k *= x
        return k

    return out if size(out) > max(size(a), size(b)) else None


# -- one finding per root cause --------------------------------------------------------------------
_ARROW = re.compile(r"([\w.\-+]+)\s*→\s*([\w.\-+]+)")


def noop(fix: str | None) -> bool:
    """A fix that rewrites a value to itself (``learning_rate 0.001 → 0.001``)."""
    if not fix:
        return False
    return any(_same(a, b) for a, b in _ARROW.findall(fix))


def _same(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def fold(findings: list[Finding]) -> list[Finding]:
    """One finding per root cause: when a structural or set-up cause is found, the symptoms it
    explains are attached to it as evidence (``symptoms``) instead of reported beside it; fixes
    that leave a value unchanged are dropped. Root causes come first, most certain first."""
    fs = [f.with_(repair=None) if f.repair and noop(f.repair.description) else f for f in findings]
    roots = [f for f in fs if f.rule in STRUCTURAL or (f.rule in SETUP and f.severity == "error")]
    if not roots:
        return fs
    roots.sort(key=lambda f: 0 if f.rule in STRUCTURAL else 1)
    folded = [f for f in fs if f.rule in SYMPTOMS]
    rest = [f for f in fs if f not in roots and f not in folded]
    if folded:
        syms = [
            {"rule": f.rule, "message": f.message.split("; likely cause")[0], "layer": f.layer}
            for f in folded
        ]
        roots[0] = roots[0].with_(evidence={**roots[0].evidence, "symptoms": syms})
    return [*roots, *rest]
