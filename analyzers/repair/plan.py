"""Repair planning: which in-place patch each localized finding calls for.

A planner per rule turns one finding (and the alignment it came from) into a :class:`Step`: the
tensors to copy, the attributes to set, the graph edits to make, and the words that describe them.
Planning is pure (no model is read or written); ``pipeline`` applies the steps to a new file,
verifies it once, and attaches each step's outcome to its finding. A rule with no planner, or a
target format its planner cannot patch, is simply not planned here (re-conversion, CL403, is the
other way to repair).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from convlint.analyzers import rules as R
from convlint.analyzers.localize.canonical import to_native
from convlint.analyzers.localize.parameters import reference_weights
from convlint.analyzers.repair.apply import takes
from convlint.analyzers.repair.attributes import AttrEdit
from convlint.analyzers.repair.graph import GraphEdit
from convlint.analyzers.repair.weights import Patch


@dataclass
class Step:
    """One finding's patch. ``key`` is what the patcher reports back as done (a tensor name, a
    node name, a graph edit's key) so the outcome can be told per finding."""

    kind: str  # patch-weights | patch-attributes | patch-graph
    key: str
    description: str
    patches: list = field(default_factory=list)
    edits: list = field(default_factory=list)
    graph_edits: list = field(default_factory=list)


@dataclass
class Plan:
    steps: dict = field(default_factory=dict)  # id(finding) -> Step

    @property
    def patches(self) -> list:
        return [p for s in self.steps.values() for p in s.patches]

    @property
    def edits(self) -> list:
        return [e for s in self.steps.values() for e in s.edits]

    @property
    def graph_edits(self) -> list:
        return [e for s in self.steps.values() for e in s.graph_edits]


def _weights(f, m) -> Step | None:
    if m is None:
        return None
    w, b, folded = reference_weights(m)
    patches = [Patch(m.target.weight_name, to_native(w, m.target.layout))]
    if m.target.bias_name and b is not None:
        patches.append(Patch(m.target.bias_name, b))
    return Step("patch-weights", m.target.weight_name,
                f"copy {f.layer}'s source weights into {m.target.layer}"
                + (" (BatchNorm folded in)" if folded else ""), patches=patches)


def _attribute(f, m) -> Step | None:
    node, ev = f.location.target_node, f.evidence
    if not node:
        return None
    if f.rule == R.OP_SEMANTICS.code and ev.get("semantics"):
        return _semantics(f, node)
    if f.rule == R.OP_SEMANTICS.code and ev.get("direction") == "as-if" and f.layer:
        return _as_if(f, ev)
    if f.rule == R.OP_SEMANTICS.code:
        desc = ", ".join(
            f"{a} to {v:.6g}" if isinstance(v, float) else f"{a} to {v!r}" for a, v in ev["changes"]
        )
        return Step("patch-attributes", node, f"set {node}'s {desc}",
                    edits=[AttrEdit(node, a, v) for a, v in ev["changes"]])
    attr = "clip" if f.rule == R.ACTIVATION_BOUNDS.code else ev["attribute"]
    return Step(
        "patch-attributes",
        node,
        f"set {node}'s {attr} to the source's {list(ev['source'])}",
        edits=[AttrEdit(node, attr, list(ev["source"]))],
    )


def _as_if(f, ev) -> Step:
    """A CL305 of the layer replay: ``changes`` are the values the target acts *as if* it had,
    ``source`` the source layer's own; the target op that implements the layer (the layer's
    name, where the converter kept it: onnx2torch names modules after ONNX nodes) gets the
    source's values. A patcher that finds no op of that name does not do the step."""
    edits = [AttrEdit(f.layer, a, v)
             for (a, _), v in zip(ev["changes"], ev["source"], strict=True)]
    desc = ", ".join(f"{e.attribute} to {e.value!r}" for e in edits)
    return Step("patch-attributes", f.layer, f"set {f.layer}'s {desc} (the source's)", edits=edits)


def _semantics(f, node: str) -> Step:
    """A CL305 of the hyperparameter stage: the source's description (``changes``) may be no
    attribute of the target's op (a FLOOR_MOD has no fmod, ScatterElements no mean), so the
    patcher rewrites the op, into an equivalent subgraph where it must: a graph step."""
    changes = [(a, v) for a, v in f.evidence["changes"]]
    e = GraphEdit("semantics", [node], changes=changes)
    desc = ", ".join(f"{a}={v!r}" for a, v in changes)
    what = f.evidence["semantics"]
    return _graph(e, f"make {node} compute the source's {what} semantics ({desc})")


def _graph(e: GraphEdit, text: str) -> Step:
    return Step("patch-graph", e.key, text, graph_edits=[e])


def _extra_op(f, m) -> Step | None:
    if not f.evidence.get("nodes"):
        return None
    e = GraphEdit("remove", list(f.evidence["nodes"]))
    return _graph(e, f"remove {', '.join(e.nodes)} from the target")


def _input_layout(f, m) -> Step | None:
    if not f.evidence.get("inverse"):
        return None
    e = GraphEdit("insert-transpose", [], f.evidence["tensor"], perm=f.evidence["inverse"])
    return _graph(e, f"transpose {e.tensor} back with {e.perm} before {f.location.target_node}")


def _input_scaling(f, m) -> Step | None:
    a, b = f.evidence["scale"], f.evidence["shift"]
    e = GraphEdit("insert-affine", [], f.evidence["tensor"], affine=(1 / a, -b / a))
    return _graph(
        e,
        f"undo the scaling of {e.tensor} ((x - {b:.6g}) / {a:.6g}) before {f.location.target_node}",
    )


def _missing_op(f, m) -> Step | None:
    ev = f.evidence
    if ev.get("op") == "floor-divide":
        e = GraphEdit("floor-divide", [ev["node"]])
        return _graph(e, f"make {e.nodes[0]} round toward minus infinity")
    if ev.get("op"):
        e = GraphEdit("insert-op", [], ev["after_tensor"], op=ev["op"])
        return _graph(e, f"insert the missing {e.op} after {e.tensor}")
    if ev.get("after_tensor"):
        b = ev.get("bounds")
        e = GraphEdit("insert-activation", [], ev["after_tensor"], tuple(b) if b else None)
        return _graph(
            e, f"insert the missing {ev['kind']} after {e.tensor}" + (f" (bounds {b})" if b else "")
        )
    return None


# rule -> the kind of patch its planner usually makes, and the planner; a target format is
# checked against the step planned (a CL305 of the hyperparameter stage is a patch-graph)
PLANNERS: dict[str, tuple[str, Callable]] = {
    **{
        code: ("patch-weights", _weights)
        for code in (
            R.WEIGHTS_CORRUPTED.code,
            R.WEIGHTS_FP16.code,
            R.KERNEL_TRANSPOSED.code,
            R.WEIGHTS_QUANTIZED.code,
            R.BN_EPSILON.code,
        )
    },
    **{
        code: ("patch-attributes", _attribute)
        for code in (R.CONV_GEOMETRY.code, R.ACTIVATION_BOUNDS.code, R.OP_SEMANTICS.code)
    },
    R.EXTRA_OP.code: ("patch-graph", _extra_op),
    R.INPUT_LAYOUT.code: ("patch-graph", _input_layout),
    R.INPUT_SCALING.code: ("patch-graph", _input_scaling),
    R.MISSING_OP.code: ("patch-graph", _missing_op),
}


def plan_repairs(findings, matches, target_format: str) -> Plan:
    """The in-place patches for the error findings that have no repair yet. ``matches`` is the
    localization's alignment (source layer -> target layer)."""
    plan = Plan()
    by_layer = {m.source.layer: m for m in matches}
    for f in findings:
        if f.repair is not None or f.severity != "error" or f.rule not in PLANNERS:
            continue
        _, planner = PLANNERS[f.rule]
        m = by_layer.get(f.layer) or next(
            (x for x in matches if (x.source.bn or {}).get("layer") == f.layer), None
        )
        step = planner(f, m)
        if step is not None and takes(target_format, step):
            plan.steps[id(f)] = step
    return plan
