"""Input stage: does the target's first kernel read the source's input, or a changed copy?

The tensor the target's first weight-aligned kernel reads is compared with the source input
that feeds the matching source kernel. Another permutation of its axes is a layout fault (H and
W swapped, NCHW read as NHWC); an affine map ``a * x + b`` of it is a scaling fault (a
normalization baked into, or dropped from, the converted model).
"""

from __future__ import annotations

import itertools

import numpy as np

from convlint.analyzers import rules as R
from convlint.analyzers.localize.align import rel_err as _rel
from convlint.analyzers.report.findings import Finding, Location

TOL = 1e-5


def _views(x: np.ndarray, shape: tuple):
    """Every axis permutation of ``x`` (batch kept first) that has ``shape``."""
    if x.ndim != len(shape):
        return
    for perm in itertools.permutations(range(1, x.ndim)):
        p = (0, *perm)
        v = np.transpose(x, p)
        if v.shape == tuple(shape):
            yield p, v


def stage(matches, src_layers, tgt_layers, src_runs, tgt_runs, src_inputs: list,
          layout_perm: tuple | None) -> list:
    """Findings when the first kernel's input differs from the source input by a permutation
    or an affine map. ``layout_perm`` is the NHWC/NCHW permutation the check itself applied."""
    if not matches or not src_runs or not tgt_runs:
        return []
    by_src = {x.name: x for x in src_layers}
    first = min(matches, key=lambda m: m.source.index)
    s_layer = by_src.get(first.source.layer)
    feeds = [i for i in (s_layer.inputs if s_layer else [])] or list(src_inputs)
    s_in_name = next((i for i in feeds if i in src_inputs or
                      (i in by_src and by_src[i].op_type == "InputLayer")), None)
    if s_in_name is None and s_layer is not None and not s_layer.inputs:
        s_in_name = src_inputs[0] if len(src_inputs) == 1 else None
    t_node = next((x for x in tgt_layers if x.name == first.target.layer), None)
    if s_in_name is None or t_node is None or not t_node.inputs:
        return []
    t_in_name = t_node.inputs[0]
    x = (
        np.asarray(src_runs[0].get(s_in_name), dtype=np.float64)
        if s_in_name in src_runs[0]
        else None
    )
    y = tgt_runs[0].get(t_in_name)
    if x is None or y is None or x.ndim != np.ndim(y):
        return []
    y = np.asarray(y, dtype=np.float64)
    views = list(_views(x, y.shape))
    expected = [p for p, v in views if p == (layout_perm or tuple(range(x.ndim)))] or \
        [p for p, v in views if p in ((0, 1, 2, 3), (0, 3, 1, 2), (0, 2, 3, 1))]
    if any(_rel(v, y) <= TOL for p, v in views if p in expected):
        return []  # the kernel reads the input as the source does (up to the layout change)
    loc = Location(source_node=first.source.layer, target_node=t_node.name)
    for p, v in views:
        if _rel(v, y) <= TOL:
            want = expected[0] if expected else tuple(range(x.ndim))
            fix = tuple(int(i) for i in np.argsort(p)[list(want)]) if len(want) == len(p) else None
            return [
                Finding(
                    R.INPUT_LAYOUT.code,
                    "error",
                    "input",
                    f"{first.target.layer} reads the input with its axes permuted {list(p)} "
                    f"(expected {list(want)}): the target's input layout is wrong",
                    layer=first.source.layer,
                    location=loc,
                    evidence={
                        "permutation": list(p),
                        "expected": list(want),
                        "tensor": t_in_name,
                        "inverse": list(fix) if fix else None,
                    },
                )
            ]
    for p, v in views:
        if p not in expected:
            continue
        a, b = np.polyfit(v.ravel(), y.ravel(), 1)
        if _rel(a * v + b, y) <= TOL and (
            abs(a - 1) > 1e-4 or abs(b) > 1e-4 * (np.abs(v).mean() + 1e-12)
        ):
            return [Finding(
                R.INPUT_SCALING.code, "error", "input",
                f"{first.target.layer} reads the input scaled by {a:.6g} and shifted by {b:.6g}: "
                "the target applies a preprocessing the source does not (or drops one)",
                layer=first.source.layer, location=loc,
                evidence={"scale": float(a), "shift": float(b), "tensor": t_in_name})]
    return []
