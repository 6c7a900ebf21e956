"""``--model-explorer``'s second file: the source-to-target alignment as Google Model Explorer's
split-pane sync navigation mapping, so both models open side by side with corresponding nodes
linked (the divergent ones coloured by the overlay on the right).

Model Explorer reads (``SyncNavigationData``, "Upload mapping from computer" in the split pane's
sync menu)::

    {"mapping": {"<left node id>": "<right node id>", ...},          # one-to-one
     "mappingEntries": [{"leftNodeIds": [...], "rightNodeIds": [...]}, ...],
     "showDiffHighlights": true}

``mappingEntries`` supersedes ``mapping`` and carries the one-to-many and many-to-one links: a
converter fuses a chain (conv, batch norm, activation) into one op (many source layers, one target
tensor), and a TFLite tensor may name several ops (``a;b``: one source layer, several target
nodes). Each node id appears in at most one entry, as Model Explorer asks. Left is the source,
right the converted model (the overlay keys the same right-hand ids).

Node ids are Model Explorer's (``left_ids``/``right_ids`` from ``analyzers/models/explorer_ids.py``:
a torch source's FX node names, an ONNX target's node names, a TFLite target's op indices), else
convlint's own names (a Keras source's layer names: Model Explorer 0.1.34 cannot open ``.keras``).

A source layer compared with a target tensor it does not match (its error more than twice that of
the best layer compared with that tensor: a convolution whose batch norm the converter folded into
it), or one the localization marks ``fused_into`` a later layer, is linked with the next layer
that does match: the op it was folded into.

In: a conversion report dict with a localization. Out: the mapping dict, or None without one.
"""

from __future__ import annotations

import math


def sync_mapping(
    r: dict, left_ids: dict | None = None, right_ids: dict | None = None
) -> dict | None:
    rows = [row for row in ((r.get("localization") or {}).get("layers")) or [] if row.get("target")]
    best: dict = {}
    for row in rows:
        if not row.get("fused_into"):
            best[str(row["target"])] = min(best.get(str(row["target"]), math.inf), _err(row))
    groups: dict = {}  # target -> source layers, in forward order
    pending: list = []  # layers with no counterpart yet: folded into the next matching one
    for row in rows:
        t = str(row["target"])
        if row.get("fused_into") or _err(row) > 2 * best.get(t, math.inf):
            pending.append(row["layer"])
            continue
        groups.setdefault(t, []).append(row["layer"])
        groups[t] += pending
        pending = []
    fmt = (r.get("target") or {}).get("format")
    entries: list = []
    seen_left: set = set()
    seen_right: set = set()
    for t, layers in groups.items():
        left = [i for n in layers for i in (left_ids or {}).get(n) or [n]]
        right = (right_ids or {}).get(t) or _targets(t, fmt)
        left = [i for i in dict.fromkeys(left) if i not in seen_left]
        right = [i for i in dict.fromkeys(right) if i not in seen_right]
        if not left or not right:
            continue
        seen_left.update(left)
        seen_right.update(right)
        entries.append({"leftNodeIds": left, "rightNodeIds": right})
    if not entries:
        return None
    one = {
        e["leftNodeIds"][0]: e["rightNodeIds"][0]
        for e in entries
        if len(e["leftNodeIds"]) == 1 and len(e["rightNodeIds"]) == 1
    }
    return {
        "mapping": one,
        "mappingEntries": entries,
        "showDiffHighlights": True,
        "disableMappingFallback": True,
    }


def _err(row: dict) -> float:
    e = row.get("rel_err")
    return math.inf if e is None or not math.isfinite(float(e)) else float(e)


def _targets(name, fmt: str | None = None) -> list:
    """The target node ids a tensor stands for: a TFLite tensor name ``a;b`` names both ops; an
    ONNX tensor ``/conv1/Conv_output_0`` is also given as its node ``/conv1/Conv`` (Model
    Explorer's ONNX adapter names a node by the ONNX node's name)."""
    name = str(name)
    parts = [p for p in name.split(";") if p]
    out = [name] + ([p for p in parts if p != name] if len(parts) > 1 else [])
    stem, sep, idx = name.rpartition("_output_")
    if fmt == "onnx" and sep and idx.isdigit() and stem:
        out.append(stem)
    return out
