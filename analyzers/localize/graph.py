"""Stage 4: graph. Compare per-layer activations over the aligned pairs and name the first
source layer, in forward order, whose output the target no longer reproduces.

A source layer that was fused away in the target (a convolution whose BatchNorm and activation
were folded in) has no tensor of its own; it is not divergent when a layer further along its
single-input chain matches again. Structural differences (op counts by type) go to evidence.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from convlint.analyzers import rules as R
from convlint.analyzers.localize import structure
from convlint.analyzers.localize.align import match_activations
from convlint.analyzers.report.findings import Finding, Location

LAYER_RTOL = 1e-4  # relative L2 error of a layer output above which it diverges
CHAIN = 4          # how far along a single-input chain a fused layer may find its match


def source_keys(layers: list, intermediates: dict) -> list:
    """``[(layer name, intermediates key)]`` in forward order."""
    out = []
    for layer in layers:
        key = layer.name if layer.name in intermediates else next(
            (o for o in layer.outputs if o in intermediates), None)
        if key is not None:
            out.append((layer.name, key))
    return out


def _successors(layers: list) -> dict:
    """Single-input consumers of each layer; without connectivity, the next layer."""
    succ: dict = {}
    have_links = any(layer.inputs for layer in layers)
    # inputs name tensors (ONNX, TFLite) or layers (Keras): both resolve to the producing layer
    producer = {o: layer.name for layer in layers for o in layer.outputs}
    for i, layer in enumerate(layers):
        if have_links:
            ins = [x for x in layer.inputs if x and x not in layer.weights]
            if len(ins) == 1:
                succ.setdefault(producer.get(ins[0], ins[0]), []).append(layer.name)
        elif i:
            succ.setdefault(layers[i - 1].name, []).append(layer.name)
    return succ


def first_divergent(layers: list, errors: dict, rtol: float = LAYER_RTOL,
                    kernel_layers: frozenset = frozenset()) -> tuple:
    """``(layer, group)``: the first divergent layer and the fused chain that ends in it."""
    succ = _successors(layers)
    pred = {s: p for p, ss in succ.items() for s in ss}
    n_inputs = {x.name: len(x.inputs) for x in layers}

    def bad(name):
        return name in errors and errors[name] > rtol

    def fused(name) -> bool:  # a later layer of its chain matches again
        return fused_into(name, succ, errors, rtol) is not None

    for layer in layers:
        name = layer.name
        if bad(name) and not fused(name):
            group = [name]
            p = pred.get(name)
            while p is not None and (p not in errors or (bad(p) and fused(p))):
                group.insert(0, p)
                p = pred.get(p)
            # forward: the chain members the target may have fused with it, up to the next
            # weight-bearing layer or merge
            n, steps = name, 0
            while len(succ.get(n, [])) == 1 and steps < CHAIN:
                n, steps = succ[n][0], steps + 1
                if not bad(n) or n in kernel_layers or n_inputs.get(n, 0) > 1:
                    break
                group.append(n)
            return name, group
    return None, []


def fused_into(name: str, succ: dict, errors: dict, rtol: float) -> str | None:
    """The later layer of ``name``'s single-input chain (within ``CHAIN`` steps) whose output the
    target reproduces: the target fused ``name`` into it. None when there is none."""
    frontier, steps = [name], 0
    while frontier and steps < CHAIN:
        nxt = []
        for n in frontier:
            for s in succ.get(n, []):
                if s in errors and errors[s] <= rtol:
                    return s
                nxt.append(s)
        frontier, steps = nxt, steps + 1
    return None


def op_counts(layers: list) -> dict:
    return dict(Counter(layer.op_type for layer in layers))


def align_activations(src_layers, src_runs, tgt_runs, inputs: Sequence = ()) -> list:
    """Activation matches keyed by source *layer* names (and model input names), in forward
    order."""
    keys = [(n, n) for n in inputs if n in src_runs[0] and n not in {x.name for x in src_layers}]
    keys += source_keys(src_layers, src_runs[0])
    acts = match_activations([k for _, k in keys], src_runs, tgt_runs)
    name_of = {k: n for n, k in keys}
    for a in acts:
        a.source = name_of[a.source]
    return acts


def stage(src_layers, tgt_layers, acts, flagged_findings, rtol=LAYER_RTOL,
          kernel_layers: frozenset = frozenset(), matches=(), layouts=("NCHW", "NCHW")) -> tuple:
    """Findings (the first divergent layer) and evidence (per-layer errors, op counts)."""
    errors = {a.source: a.rel_err for a in acts}
    target_of = {a.source: a.target for a in acts}
    layer, group = first_divergent(src_layers, errors, rtol, kernel_layers)
    succ = _successors(src_layers)

    def row(a) -> dict:
        out = {"layer": a.source, "target": a.target,
               "rel_err": a.rel_err if a.rel_err != float("inf") else None}
        into = fused_into(a.source, succ, errors, rtol) if a.rel_err > rtol else None
        if into is not None:  # no tensor of its own: compared where its chain is reproduced
            out.update(fused_into=into, target=target_of.get(into))
        return out

    evidence = {
        "layer_errors": [row(a) for a in acts],
        "op_counts": {"source": op_counts(src_layers), "target": op_counts(tgt_layers)},
    }
    flagged_names = {f.layer for f in flagged_findings}
    struct = structure.stage(layer, group, src_layers, tgt_layers, acts, flagged_names, matches,
                             layouts)
    if layer is None:
        if struct:  # every layer is reproduced; the target adds ops after the last one
            tail = struct[0]
            struct = [Finding(R.FIRST_DIVERGENT.code, "error", "graph",
                              f"first divergent layer: {tail.layer} (every layer is reproduced, "
                              f"but the target changes the output after it)", layer=tail.layer,
                              location=tail.location, evidence={"rel_err": 0.0, "fused_group": [],
                                                                "threshold": rtol}), *struct]
        return struct, evidence
    # name the layer that explains the divergence: a layer of the group with a weight finding
    flagged = flagged_names | {f.layer for f in struct}
    blamed = next((g for g in group if g in flagged), layer)
    # the group's comparable tensor: the earliest member within 2x of the best-reproduced one
    best = min(errors[g] for g in group if g in errors)
    shown = next(g for g in group if g in errors and errors[g] <= 2 * best)
    order = {x.name: i for i, x in enumerate(src_layers)}
    first = order.get(group[0], -1)
    before = [e for n, e in errors.items()
              if n not in group and e <= rtol and order.get(n, 1 << 30) < first]
    msg = f"first divergent layer: {blamed} (relative error {errors[shown]:.3g} at {shown}" + (
        f"; the {len(before)} layers before it match within {max(before):.1g})" if before else ")"
    )
    f = Finding(R.FIRST_DIVERGENT.code, "error", "graph", msg, layer=blamed,
                location=Location(source_node=shown, target_node=target_of.get(shown)),
                evidence={"rel_err": errors[shown], "fused_group": group, "threshold": rtol})
    return [f, *struct], evidence
