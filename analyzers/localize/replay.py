"""Layer replay: the independent oracle at the first divergent layer. Pure: plans and judges;
the caller runs the plan (``models.onnx_replay``).

The target ops that compute the divergent source layer are cut out of the target graph between
tensors the target still reproduces, fed with the *source's* captured values of those tensors (in
the target's layout), and run through an op-level reference and through the target runtime. Their
outputs against the source layer's captured output say which of three disagrees:

* ``conversion``: the reference and the runtime agree with each other, not with the source: the
  converted op means something else than the source layer (a converter fault);
* ``runtime``: the reference reproduces the source and the runtime does not: the runtime's kernel
  deviates from the op's meaning (not the converter's fault);
* ``inherited``: both reproduce the source when fed the source's inputs: the divergence reaches
  this layer from its inputs (an input or an earlier, unaligned difference).

The source in its own framework is the reference: the source's kernels are never blamed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from convlint.analyzers.localize.align import rel_err

DEPTH = 24  # target nodes a replay may hold


@dataclass
class ReplayPlan:
    layer: str                   # the source layer replayed
    source_key: str              # its captured output in the source runs
    output: str                  # the target tensor aligned with it
    perm: tuple | None           # target -> source layout of ``output``
    nodes: list                  # target node names, in graph order
    feeds: dict = field(default_factory=dict)   # target tensor -> ("source"|"target", key, perm)

    def inputs(self, src_run: dict, tgt_run: dict) -> dict:
        """The feeds' values, in the target's layout."""
        out = {}
        for t, (side, key, perm) in self.feeds.items():
            v = np.asarray((src_run if side == "source" else tgt_run)[key])
            if side == "source" and perm is not None:
                v = np.transpose(v, np.argsort(perm))
            out[t] = np.ascontiguousarray(v.astype(np.asarray(tgt_run[t]).dtype)
                                          if t in tgt_run else v)
        return out

    def expected(self, src_run: dict) -> np.ndarray:
        return np.asarray(src_run[self.source_key])

    def in_source_layout(self, y: np.ndarray) -> np.ndarray:
        """``y`` (a target tensor) in the source's layout; as it is when it cannot be read so
        (the comparison then fails on its shape)."""
        if self.perm is None or np.ndim(y) != len(self.perm):
            return y
        return np.transpose(y, self.perm)

    def to_dict(self) -> dict:
        return {"layer": self.layer, "target_tensor": self.output, "target_nodes": self.nodes,
                "fed_from": {t: f"{side}:{key}" for t, (side, key, _) in self.feeds.items()}}


def plan(group: list, acts: list, src_keys: dict, tgt_layers: list, good: float,
         src_layers: Sequence = (), kernels: Sequence = (), shapes: dict | None = None,
         tgt_shapes: dict | None = None) -> ReplayPlan | None:
    """The replay of a divergent source ``group`` (a fused chain, forward order).

    ``acts``: activation matches (source layer -> target tensor); ``src_keys``: source layer ->
    key of its output in the runs; ``good``: the relative error under which a tensor counts as
    reproduced; ``kernels``: the kernel matches (the next aligned kernel tells which target
    tensor holds the group's output); ``shapes``/``tgt_shapes``: tensor shapes of each side."""
    shapes, tgt_shapes = shapes or {}, tgt_shapes or {}
    by_src = {a.source: a for a in acts}
    producer = {o: n for n in tgt_layers for o in n.outputs}
    # the group's output as the next aligned kernel reads it: structural, where the value match
    # of a divergent layer can only be a guess
    fed = _read_by_next_kernel(group, src_layers, kernels, tgt_layers)
    perm = _perm(shapes.get(group[-1]), tgt_shapes.get(fed)) if fed is not None else False
    if fed is not None and perm is not False:
        last, out = group[-1], fed
    else:
        last = next((g for g in reversed(group) if by_src.get(g) and by_src[g].target), None)
        if last is None:
            return None
        out, perm = by_src[last].target, by_src[last].permutation
    if out not in producer or last not in src_keys:
        return None
    in_group = set(group)
    reproduced = {}
    for a in acts:
        if a.target and a.source not in in_group and a.rel_err <= good and a.source in src_keys:
            reproduced.setdefault(a.target, (src_keys[a.source], a.permutation))
    nodes, feeds, stack, seen = [], {}, [out], set()
    while stack:
        t = stack.pop()
        if t in seen or not t:
            continue
        seen.add(t)
        n = producer.get(t)
        if t != out and t in reproduced:
            key, feed_perm = reproduced[t]
            feeds[t] = ("source", key, feed_perm)
            continue
        if n is None or len(nodes) >= DEPTH:
            feeds[t] = ("target", t, None)
            continue
        if n.name not in nodes:
            nodes.append(n.name)
        stack.extend(i for i in n.inputs if i and i not in n.weights)
    order = {n.name: i for i, n in enumerate(tgt_layers)}
    nodes.sort(key=lambda n: order.get(n, 0))
    fed_perms = [fp for side, _, fp in feeds.values() if side == "source"]
    if not fed_perms:
        return None  # nothing of the source reaches it: no independent evidence
    if fed is not None:
        # shapes alone cannot tell layouts apart when H, W and C are equal; the ops between keep
        # the layout their inputs were read in (matched by values), so that reading comes first
        src_shape, tgt_shape = shapes.get(last), tgt_shapes.get(out)
        perm = next((fp for fp in fed_perms if fp is not None and src_shape is not None
                     and tgt_shape is not None and len(fp) == len(tgt_shape)
                     and tuple(tgt_shape[i] for i in fp) == tuple(src_shape)), perm)
    return ReplayPlan(last, src_keys[last], out, perm, nodes, feeds)


def _read_by_next_kernel(group: list, src_layers: Sequence, kernels: Sequence,
                         tgt_layers: list) -> str | None:
    """The target tensor the matched kernel after ``group`` reads (its first dynamic input)."""
    by = {x.name: x for x in src_layers}
    last = by.get(group[-1]) if group else None
    if last is None:
        return None
    names = {last.name, *last.outputs}
    tgt = {x.name: x for x in tgt_layers}
    for m in kernels:
        s, t = by.get(m.source.layer), tgt.get(m.target.layer)
        if s is None or t is None or not any(i in names for i in s.inputs):
            continue
        return next((i for i in t.inputs if i and i not in t.weights), None)
    return None


def _perm(src_shape, tgt_shape) -> tuple | Literal[False] | None:
    """The transpose that reads a target tensor in the source's layout: None (as is), a
    permutation, or False when the shapes cannot be the same tensor."""
    if src_shape is None or tgt_shape is None:
        return False
    if tuple(src_shape) == tuple(tgt_shape):
        return None
    if len(src_shape) == 4 == len(tgt_shape):
        for perm in ((0, 2, 3, 1), (0, 3, 1, 2)):
            if tuple(tgt_shape[i] for i in perm) == tuple(src_shape):
                return perm
    return False


@dataclass
class ReplayResult:
    verdict: str                 # "conversion", "runtime", "inherited"
    reference_vs_source: float
    runtime_vs_source: float
    reference_vs_runtime: float

    def to_dict(self) -> dict:
        return {"verdict": self.verdict,
                **{k: _num(getattr(self, k)) for k in
                   ("reference_vs_source", "runtime_vs_source", "reference_vs_runtime")}}


def judge(
    expected: np.ndarray, reference: np.ndarray, runtime: np.ndarray, close: float
) -> ReplayResult:
    """Which of source, op meaning (reference) and runtime disagrees; ``close`` is the relative
    error under which two outputs agree."""
    e = expected.astype(np.float64)
    ref, rt = reference.astype(np.float64), runtime.astype(np.float64)
    e_ref = rel_err(e, ref) if ref.shape == e.shape else float("inf")
    e_rt = rel_err(e, rt) if rt.shape == e.shape else float("inf")
    ref_rt = rel_err(ref, rt) if ref.shape == rt.shape else float("inf")
    if e_ref <= close and e_rt <= close:
        v = "inherited"
    elif e_ref <= close:
        v = "runtime"
    else:
        v = "conversion"
    return ReplayResult(v, e_ref, e_rt, ref_rt)


# --------------------------------------------------------------------------- candidates
# string attributes whose values ONNX enumerates (the schema does not list them)
ENUMS = {
    "mode": {"Resize": ["nearest", "linear", "cubic"], "Upsample": ["nearest", "linear"],
             "Pad": ["constant", "reflect", "edge", "wrap"],
             "DepthToSpace": ["DCR", "CRD"], "GridSample": ["bilinear", "nearest", "bicubic"]},
    "coordinate_transformation_mode": ["half_pixel", "pytorch_half_pixel", "align_corners",
                                       "asymmetric", "half_pixel_symmetric", "tf_crop_and_resize"],
    "nearest_mode": ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"],
    "approximate": ["none", "tanh"],
    "auto_pad": ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"],
    "keep_aspect_ratio_policy": ["stretch", "not_larger", "not_smaller"],
    "reduction": ["none", "add", "mul", "max", "min"],
}
# constants that converters get wrong or leave at a default (activation slopes, epsilons, cubic
# coefficients, hard-sigmoid slopes), tried besides the source layer's own numbers
COMMON = (0.0, 1.0, 0.5, 1 / 6, 0.2, 0.1, 0.01, 0.3, 1e-3, 1e-5, 1e-6, 1e-12, -0.5, -0.75, 6.0,
          3.0, 2.0)


def source_numbers(layers: list) -> list:
    """Every scalar number in the source layers' attributes (configs, exported op arguments)."""
    out = []

    def walk(v):
        if isinstance(v, bool):
            return
        if isinstance(v, (int, float)) and np.isfinite(v):
            out.append(float(v))
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, dict):
            for x in v.values():
                walk(x)

    for layer in layers:
        walk(layer.attributes)
    return list(dict.fromkeys(out))


def candidates(node, schema: dict, numbers: list) -> list:
    """``[(attribute, value)]`` single changes to try on a target node: every attribute its op
    has (set or left at the default), over the values its kind allows."""
    out = []
    for name, (kind, default) in schema.items():
        cur = node.attributes.get(name, default)
        if kind == "string":
            vals = ENUMS.get(name)
            if isinstance(vals, dict):
                vals = vals.get(node.op_type)
            for v in vals or []:
                if v != cur:
                    out.append((name, v))
        elif kind == "float":
            for v in list(numbers) + list(COMMON):
                if cur is None or not np.isclose(v, cur, rtol=1e-6, atol=0):
                    out.append((name, float(v)))
        elif kind == "int" and name not in ("axis", "axes", "to", "group", "blocksize", "seed"):
            for v in (0, 1):
                if v != cur:
                    out.append((name, v))
    # scalar float constants read as inputs (Clip bounds, Pad values, alpha as an input)
    for i, t in enumerate(node.inputs):
        w = node.weights.get(t)
        if w is not None and np.size(w) == 1 and np.issubdtype(np.asarray(w).dtype, np.floating):
            cur = float(np.asarray(w).ravel()[0])
            for v in list(numbers) + list(COMMON):
                if not np.isclose(v, cur, rtol=1e-6, atol=0):
                    out.append((f"input:{i}", float(v)))
    return list(dict.fromkeys(out))


def pairs(node, schema: dict) -> list:
    """Two string attributes changed at once (Resize's mode with its coordinate mode)."""
    singles = [
        c for c in candidates(node, {k: v for k, v in schema.items() if v[0] == "string"}, [])
    ]
    out = []
    for i, a in enumerate(singles):
        for b in singles[i + 1:]:
            if a[0] != b[0]:
                out.append((a, b))
    return out


def _num(x: float):
    return None if not np.isfinite(x) else float(x)
