"""Stage 4, structure: what the target does between two aligned tensors that the source does not.

Given the first divergent source group and the tensors the target reproduces just before and
at it, the target ops on the path between them are put in categories and compared with the
source group's: an extra Transpose, Pad, Slice, Cast, (De)Quantize, reshape or activation, or a
missing activation. Layout transposes that the endpoints' layouts explain, and Pads split out
of a SAME convolution (a Pad feeding a Conv), are not extra.
"""

from __future__ import annotations

import numpy as np

from convlint.analyzers import rules as R
from convlint.analyzers.localize.hyperparameters import layer_bounds
from convlint.analyzers.report.findings import Finding, Location

CATEGORIES = {
    "kernel": {"Conv", "ConvTranspose", "Gemm", "MatMul", "Conv2D", "DepthwiseConv2D", "Dense",
               "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "Conv2d", "Linear"},
    "activation": {"Relu", "Clip", "Sigmoid", "Tanh", "LeakyRelu", "Elu", "Selu", "HardSigmoid",
                   "HardSwish", "Gelu", "PRelu", "ReLU", "ReLU6", "RELU", "RELU6", "LOGISTIC",
                   "TANH", "LEAKY_RELU", "HARD_SWISH", "GELU", "Hardtanh", "SiLU",
                   # torch.export functional ops (aten names)
                   "relu", "relu_", "hardtanh", "hardtanh_", "gelu", "sigmoid", "tanh", "silu",
                   "leaky_relu", "elu", "hardswish", "hardsigmoid"},
    "transpose": {"Transpose", "TRANSPOSE", "permute", "transpose"},
    "pad": {"Pad", "PAD", "PADV2", "ZeroPadding2D", "ZeroPad2d", "pad", "constant_pad_nd"},
    "slice": {"Slice", "SLICE", "STRIDED_SLICE", "Cropping2D", "slice"},
    "cast": {"Cast", "CAST"},
    "quantize": {"QuantizeLinear", "DequantizeLinear", "QUANTIZE", "DEQUANTIZE"},
}
EXTRA_KINDS = ("transpose", "pad", "slice", "cast", "quantize", "activation")


def category(op_type: str) -> str | None:
    for cat, ops in CATEGORIES.items():
        if op_type in ops:
            return cat
    return None


def _has_activation(layer) -> bool:
    """An activation layer, or a layer with one fused in (Keras ``activation=``, TFLite)."""
    if category(layer.op_type) == "activation":
        return True
    if layer.attributes.get("activation") not in (None, "linear"):
        return True
    return layer.attributes.get("FusedActivationFunction") not in (None, 0)


def _source_activations(layers) -> int:
    return sum(1 for layer in layers if _has_activation(layer))


def _target_activations(nodes) -> int:
    n = sum(1 for x in nodes if category(x.op_type) == "activation")
    return n + sum(1 for x in nodes if x.attributes.get("FusedActivationFunction") not in (None, 0))


def _consumers(layers) -> dict:
    """tensor or layer name -> layers that read it."""
    out: dict = {}
    for x in layers:
        for i in x.inputs:
            out.setdefault(i, []).append(x)
    return out


def region(layers, start_names: list, stop: set, limit: int = 48) -> list:
    """Layers reachable forward from ``start_names`` (tensor or layer names), not expanding past
    the layers in ``stop`` (the next aligned kernels, which are included)."""
    cons = _consumers(layers)
    seen, out, frontier = set(), [], list(start_names)
    while frontier and len(out) < limit:
        name = frontier.pop(0)
        for x in cons.get(name, []):
            if x.name in seen:
                continue
            seen.add(x.name)
            out.append(x)
            if x.name not in stop:
                frontier.extend([x.name, *x.outputs])
    return out


def _net_perm(nodes) -> tuple | None:
    perm = None
    for x in nodes:
        if category(x.op_type) == "transpose":
            p = x.attributes.get("perm")
            if p is None and x.weights:
                p = np.asarray(next(iter(x.weights.values()))).tolist()
            if p is None:
                return (-1,)
            perm = tuple(p) if perm is None else tuple(perm[i] for i in p)
    return perm


NHWC_TO_NCHW, NCHW_TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def _expected_perm(layout_before: str | None, layout_anchor: str | None) -> tuple:
    if layout_before == "NHWC" and layout_anchor == "NCHW":
        return NHWC_TO_NCHW
    if layout_before == "NCHW" and layout_anchor == "NHWC":
        return NCHW_TO_NHWC
    return (0, 1, 2, 3)


def explain(src_region, tgt_region, anchors_src: set, anchors_tgt: set, layouts: tuple,
            reproduced: dict, src_layers=()) -> list:
    """``[(how, kind, nodes)]``: categories the target region has more (or fewer) of.

    ``layouts``: (target layout of the tensor the region starts from, layout the target's
    kernels expect); a transpose chain converting one to the other is not extra."""
    found = []
    cons = _consumers(tgt_region)
    for kind in ("transpose", "pad", "slice", "cast", "quantize"):
        ops = [x for x in tgt_region if category(x.op_type) == kind]
        if kind == "pad":  # a Pad that feeds a conv is SAME padding split out of it
            ops = [x for x in ops if not any(category(c.op_type) == "kernel"
                                             for o in x.outputs for c in cons.get(o, []))]
        if kind == "transpose" and ops:
            net = _net_perm(ops)
            if net is not None and len(net) == 4 and net == _expected_perm(*layouts):
                ops = []  # the layout conversion the kernels need
            elif net is not None and net == tuple(range(len(net))):
                ops = []  # a round trip
        n_src = sum(1 for x in src_region if category(x.op_type) == kind)
        if len(ops) > n_src:
            found.append(("extra", kind, ops[n_src:]))
    # fused activations of the anchor kernels at the region's far end belong to the next group
    s_act = _source_activations([x for x in src_region if x.name not in anchors_src])
    t_act = _target_activations([x for x in tgt_region if x.name not in anchors_tgt])
    if t_act > s_act:
        # extra: an activation reading a tensor that reproduces a source layer whose own
        # consumers are not activations
        succ: dict = {}
        for x in src_layers:
            for i in x.inputs:
                succ.setdefault(i, []).append(x)
        acts = [x for x in tgt_region if category(x.op_type) == "activation"]

        def unexplained(node) -> bool:  # (an activation fused into a later Add does not count)
            src = next((reproduced[i] for i in node.inputs if i in reproduced), None)
            return src is not None and not any(
                category(c.op_type) == "activation" or c.op_type == "Activation"
                for c in succ.get(src, []))

        found.append(
            ("extra", "activation", [x for x in acts if unexplained(x)] or acts[s_act:] or acts)
        )
    elif t_act < s_act:
        src_acts = [x for x in src_region if x.name not in anchors_src and _has_activation(x)]
        found.append(("missing", "activation", src_acts[:s_act - t_act]))
    return found


def stage(first, group, src_layers, tgt_layers, acts, flagged: set, matches=(),
          layouts: tuple = ("NCHW", "NCHW")) -> list:
    """Structural findings for the first divergent group, when no weight or attribute finding
    already explains it. The region compared runs from the last tensor the target reproduces
    before the group to the next weight-aligned kernels after the group's own. With
    ``first`` None (no layer diverges, yet the outputs do) the region is the target's tail
    after the tensor that reproduces the source's last layer."""
    by_name = {x.name: x for x in src_layers}
    match = {a.source: a for a in acts}
    order = [x.name for x in src_layers]
    reproduced = {a.target: a.source for a in acts if a.target and a.rel_err <= 1e-3}
    if first is None:
        last = next((match[n] for n in reversed(order) if n in match and match[n].target), None)
        if last is None:
            return []
        tail = region(tgt_layers, [last.target], set())
        nodes = [x for x in tail if category(x.op_type) in EXTRA_KINDS]
        if not nodes:
            return []
        names = [x.name for x in nodes]
        return [Finding(R.EXTRA_OP.code, "error", "graph",
                        f"the target has extra ops after the source's last layer {last.source}: "
                        f"{', '.join(names)}", layer=last.source,
                        location=Location(source_node=last.source, target_node=names[0]),
                        evidence={"kind": category(nodes[0].op_type), "nodes": names,
                                  "after_layer": last.source, "after_tensor": last.target})]
    if flagged & set(group):
        return []
    preds = _preds(by_name, group[0], order)
    before = next((match[n] for n in reversed(order[:order.index(group[0])])
                   if n in preds and n in match and match[n].target), None)
    if before is None:  # the group reads a model input: anchor there
        before = next(
            (match[n] for n in preds if n in match and n not in by_name and match[n].target), None
        )
    if before is None:
        return []
    own = set(group)
    k_src = {m.source.layer for m in matches if m.source.layer not in own}
    k_tgt = {m.target.layer for m in matches if m.source.layer not in own}
    start = by_name[before.source].outputs if before.source in by_name else []
    src_region = region(src_layers, [before.source, *start], k_src)
    tgt_region = region(tgt_layers, [before.target], k_tgt)
    layout_before, tgt_layout = layouts
    if before.permutation is not None:
        layout_before = "NCHW" if layout_before == "NHWC" else "NHWC"
    diffs = explain(src_region, tgt_region, k_src, k_tgt, (layout_before, tgt_layout),
                    reproduced, src_layers)
    out = []
    for how, kind, nodes in diffs:
        names = [x.name for x in nodes]
        if how == "extra":
            msg = (f"the target has an extra {kind} ({', '.join(names)}) after {before.source}, "
                   f"where the divergence starts")
            rule, layer, node = R.EXTRA_OP, first, names[0] if names else None
        else:
            msg = (
                f"the target lacks the {kind} of {', '.join(names)} (source), after {before.source}"
            )
            rule, layer, node = R.MISSING_OP, names[0] if names else first, before.target
        ev = {"kind": kind, "nodes": names, "group": group,
              "after_layer": before.source, "after_tensor": before.target}
        if how == "missing" and nodes:
            b = layer_bounds(nodes[0])
            ev["bounds"] = list(b) if b else None
            # an activation fused into a source kernel goes back after that kernel's target node
            fused_in = next(
                (m.target.layer for m in matches if m.source.layer == nodes[0].name), None
            )
            t_node = next((x for x in tgt_layers if x.name == fused_in), None)
            if t_node is not None and t_node.outputs:
                ev["after_tensor"] = t_node.outputs[0]
        out.append(Finding(rule.code, "error", "graph", msg, layer=layer,
                           location=Location(source_node=layer, target_node=node), evidence=ev))
    return out


def _preds(by_name, name, order) -> set:
    """The layers feeding ``name`` (by connectivity, else the one before it)."""
    layer = by_name.get(name)
    if layer is not None and layer.inputs:
        return set(layer.inputs)
    i = order.index(name)
    return {order[i - 1]} if i else set()
