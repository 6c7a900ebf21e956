"""``--model-explorer``: per-node divergence as Google Model Explorer custom node data.

Model Explorer (https://github.com/google-ai-edge/model-explorer) colours a graph's nodes from a
"node data" JSON file loaded next to the model. We write its single-graph form::

    {"results": {"<node id>": {"value": 0.0036, "bgColor": "..."}, ...},
     "thresholds": [{"value": 0.0001, "bgColor": "..."}, ...]}

keyed by the node ids Model Explorer's adapter gives the converted model (``ids``, from
``analyzers/models/explorer_ids.py``: an ONNX node's name, a TFLite op's index) or else by its
output tensor names, valued by
the relative error of the source layer that tensor reproduces. Open the *converted* model in
Model Explorer and load the file as custom node data: nodes within the threshold are green, up to
ten times over it amber, beyond red, and the node where the error first jumps is solid red.
"""

from __future__ import annotations

import math

from convlint.analyzers import defaults as D
from convlint.analyzers.report.html import first_jump, layer_groups, sub_reports, threshold_of

BIG = 1e30  # a non-finite error (NaN or inf in the target) as a finite JSON number


def overlays(report, resolve=None) -> list:
    """One (conversion report dict, node data dict) per conversion that has per-layer errors.
    ``resolve(path, format)`` gives a model's {tensor name: [Model Explorer node ids]}."""
    convs = []
    for r in sub_reports(report.to_dict()):
        convs += [r] if r.get("kind") == "conversion" else list(r.get("conversions") or [])
    out = []
    for r in convs:
        tgt = r.get("target") or {}
        ids = resolve(tgt.get("path"), tgt.get("format")) if resolve and tgt.get("path") else None
        data = node_data(r, ids)
        if data is not None:
            out.append((r, data))
    return out


def node_data(r: dict, ids: dict | None = None) -> dict | None:
    groups = layer_groups(((r.get("localization") or {}).get("layers")) or [])
    groups = [g for g in groups if g.get("target")]
    if not groups:
        return None
    # a report without its tolerance (older JSON) is coloured on the default relative tolerance
    th = threshold_of(r) or D.RTOL
    first = first_jump(r, groups)
    results = {}
    for i, g in enumerate(groups):
        e = g.get("rel_err")
        v = BIG if e is None or not math.isfinite(e) else float(e)
        res: dict[str, float | str] = {"value": v}
        if i == first:
            res.update(bgColor="#d32f2f", textColor="#ffffff")
        for key in (ids or {}).get(g["target"]) or [g["target"]]:
            results[key] = res
    return {"results": results,
            "thresholds": [{"value": th, "bgColor": "#c8e6c9"},
                           {"value": th * 10, "bgColor": "#ffe082"},
                           {"value": BIG * 10, "bgColor": "#ef9a9a"}]}
