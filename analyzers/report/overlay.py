"""``--model-explorer``: per-node divergence as Google Model Explorer custom node data.

Model Explorer (https://github.com/google-ai-edge/model-explorer) colours a graph's nodes from a
"node data" JSON file loaded next to the model. We write its single-graph form::

    {"results": {"<tensor name>": {"value": 0.0036, "bgColor": "..."}, ...},
     "thresholds": [{"value": 0.0001, "bgColor": "..."}, ...]}

keyed by the converted model's output tensor names (the adapters match a key against each node's
``tensor_name`` output metadata), valued by the relative error of the source layer that tensor
reproduces. Open the *converted* model in Model Explorer and load the file as custom node data:
nodes within the threshold are green, up to ten times over it amber, beyond red, and the node where
the error first jumps is solid red.
"""

from __future__ import annotations

import math

from convlint.analyzers.report.html import first_jump, layer_groups, sub_reports, threshold_of

BIG = 1e30  # a non-finite error (NaN or inf in the target) as a finite JSON number


def overlays(report) -> list:
    """One (conversion report dict, node data dict) per conversion that has per-layer errors."""
    convs = []
    for r in sub_reports(report.to_dict()):
        convs += [r] if r.get("kind") == "conversion" else list(r.get("conversions") or [])
    out = []
    for r in convs:
        data = node_data(r)
        if data is not None:
            out.append((r, data))
    return out


def node_data(r: dict) -> dict | None:
    groups = layer_groups(((r.get("localization") or {}).get("layers")) or [])
    groups = [g for g in groups if g.get("target")]
    if not groups:
        return None
    th = threshold_of(r) or 1e-4
    first = first_jump(r, groups)
    results = {}
    for i, g in enumerate(groups):
        e = g.get("rel_err")
        v = BIG if e is None or not math.isfinite(e) else float(e)
        res: dict[str, float | str] = {"value": v}
        if i == first:
            res.update(bgColor="#d32f2f", textColor="#ffffff")
        results[g["target"]] = res
    return {"results": results,
            "thresholds": [{"value": th, "bgColor": "#c8e6c9"},
                           {"value": th * 10, "bgColor": "#ffe082"},
                           {"value": BIG * 10, "bgColor": "#ef9a9a"}]}
