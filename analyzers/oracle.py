"""The independent oracle at the first divergent layer, and the attribute search it enables.

Given a localization (``localize.stages.run``) of an ONNX target, replay the target ops of the
first divergent source layer on the source's captured inputs (``localize.replay`` plans and
judges, ``models.onnx_replay`` runs). When the converted op means something else than the source
layer and no other stage explains it, search the op's attributes (every attribute its ONNX schema
has, set or left at the default, over the values its kind allows and the source layer's own
numbers) for the value that makes the layer reproduce the source: that names the hyperparameter
and is the repair, tried on the layer alone (milliseconds) before the whole pair is checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convlint.analyzers import rules as R
from convlint.analyzers.localize import graph, replay
from convlint.analyzers.localize.align import rel_err
from convlint.analyzers.report.findings import Finding, Location

MAX_CANDIDATES = 600


@dataclass
class OracleResult:
    findings: list = field(default_factory=list)
    evidence: dict = field(default_factory=dict)
    verdict: str | None = None   # replay verdict: conversion, runtime, inherited


def run(target, cap, loc, layer_rtol: float) -> OracleResult:
    """Replay the first divergent layer of ``loc`` (an ONNX ``target`` runner); findings to add."""
    first = next((f for f in loc.findings if f.rule == R.FIRST_DIVERGENT.code), None)
    if first is None or target.format != "onnx" or not cap.source_runs:
        return OracleResult()
    from convlint.analyzers.models import onnx_replay as O

    group = list(first.evidence.get("fused_group") or [first.layer])
    src_keys = dict(graph.source_keys(cap.source_layers, cap.source_runs[0]))
    src_keys.update({n: n for n in cap.source_inputs})
    good = max(layer_rtol, 1e-6)
    p = replay.plan(group, loc.alignment.activations, src_keys, cap.target_layers, good)
    if p is None:
        return OracleResult(evidence={"replay": None, "why": "no aligned inputs to feed"})
    close = max(10 * layer_rtol, 1e-4)
    feeds = p.inputs(cap.source_runs[0], cap.target_runs[0])
    sub = O.subgraph(target.model, p.nodes, feeds, [p.output])
    expected = p.expected(cap.source_runs[0])
    try:
        ref = O.run_reference(sub, feeds)[0]
        rt = O.run_runtime(sub, feeds)[0]
    except Exception as e:  # noqa: BLE001 - an op the reference lacks: no oracle for this layer
        return OracleResult(evidence={"replay": p.to_dict(), "error": " ".join(str(e).split())[:300]})
    res = replay.judge(expected, p.in_source_layout(ref), p.in_source_layout(rt), close)
    ev = {"replay": dict(p.to_dict(), **res.to_dict(), close=close)}
    out = OracleResult(evidence=ev, verdict=res.verdict)
    nodes = ", ".join(p.nodes[:6]) + (" ..." if len(p.nodes) > 6 else "")
    if res.verdict == "runtime":
        out.findings.append(Finding(
            R.TVM_MISMATCH.code, "error", "runtime",
            f"replaying {first.layer} alone on the source's inputs: the ONNX reference reproduces "
            f"the source (relative error {res.reference_vs_source:.2g}) but onnxruntime does not "
            f"({res.runtime_vs_source:.2g}): onnxruntime's kernel for {nodes} deviates from the "
            "op's ONNX meaning; the converted model is faithful", layer=first.layer,
            location=Location(source_node=p.source_key, target_node=p.nodes[-1]),
            evidence={"model": "target", **ev}))
        return out
    if res.verdict != "conversion":
        return out
    explained = {f.layer for f in loc.findings if f.rule != R.FIRST_DIVERGENT.code and f.severity == "error"}
    if explained & set(group):
        return out
    src_layers = [x for x in cap.source_layers if x.name in group]
    hit = search(sub, p, feeds, expected, cap.target_layers, src_layers, close)
    if hit is not None:
        node, changes, err = hit
        op = next(x.op_type for x in cap.target_layers if x.name == node)
        by = {x.name: x for x in cap.target_layers}
        desc = ", ".join(f"{a}={_fmt(_show(by[node], a))} -> {_fmt(v)}" for a, v in changes)
        out.findings.append(Finding(
            R.OP_SEMANTICS.code, "error", "hyperparameters",
            f"{first.layer}: the target's {node} ({op}) computes it with other semantics; with "
            f"{desc} the layer alone reproduces the source (relative error "
            f"{res.reference_vs_source:.2g} -> {err:.2g})", layer=first.layer,
            location=Location(source_node=p.source_key, target_node=node),
            evidence={"node": node, "op": op, "changes": [[a, v] for a, v in changes],
                      "target": [_show(by[node], a) for a, _ in changes],
                      "replay_error_after": err, **ev}))
    return out


def search(sub, p, feeds, expected, tgt_layers, src_layers, close) -> tuple | None:
    """The first attribute change (single, then two string attributes of one node) with which
    the replayed layer reproduces the source: ``(node, [(attribute, value)], error)``."""
    from convlint.analyzers.models import onnx_replay as O

    numbers = replay.source_numbers(src_layers)
    by = {x.name: x for x in tgt_layers}
    tried = 0
    best = None
    for stage in ("single", "pairs"):
        for name in reversed(p.nodes):  # the op that produces the layer's output first
            n = by[name]
            schema = O.schema_attributes(n.op_type, "")
            cands = ([[c] for c in replay.candidates(n, schema, numbers)] if stage == "single"
                     else [list(pr) for pr in replay.pairs(n, schema)])
            for changes in cands:
                if tried >= MAX_CANDIDATES:
                    return best
                tried += 1
                m = sub
                for a, v in changes:
                    m = O.with_attribute(m, name, a, v)
                try:
                    y = O.run_runtime(m, feeds)[0]
                except Exception:  # noqa: BLE001 - an invalid value for this op: not a candidate
                    continue
                y = p.in_source_layout(y)
                if y.shape != expected.shape:
                    continue
                e = rel_err(expected.astype(np.float64), y.astype(np.float64))
                if e <= close and (best is None or e < best[2]):
                    best = (name, changes, e)
            if best is not None:
                return best
    return best


def _fmt(v) -> str:
    return f"{v:.6g}" if isinstance(v, float) else repr(v)


def _show(node, attr: str):
    if attr.startswith("input:"):
        k = int(attr.split(":")[1])
        w = node.weights.get(node.inputs[k]) if k < len(node.inputs) else None
        return None if w is None else float(np.asarray(w).ravel()[0])
    from convlint.analyzers.models.onnx_replay import schema_attributes

    return node.attributes.get(attr, schema_attributes(node.op_type).get(attr, (None, None))[1])
