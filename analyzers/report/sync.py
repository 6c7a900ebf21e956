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
nodes). Each node id appears in at most one entry, as Model Explorer asks. Left is the source
(layer names), right the converted model (tensor names, as the overlay keys them).

In: a conversion report dict with a localization. Out: the mapping dict, or None without one.
"""

from __future__ import annotations

from convlint.analyzers.report.html import layer_groups


def sync_mapping(r: dict) -> dict | None:
    groups = [
        g
        for g in layer_groups(((r.get("localization") or {}).get("layers")) or [])
        if g.get("target")
    ]
    fmt = (r.get("target") or {}).get("format")
    entries: list = []
    seen_left: set = set()
    seen_right: set = set()
    for g in groups:
        left = [n for n in [g["layer"], *g.get("fused", [])] if n not in seen_left]
        right = [t for t in _targets(g["target"], fmt) if t not in seen_right]
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
