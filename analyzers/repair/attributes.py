"""patch-attributes: set a target node's attributes (strides, dilations, pads) or its clip
bounds back to the source's, in an ONNX model held in memory (the caller writes the file)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class AttrEdit:
    node: str
    attribute: str           # "strides", "dilations", "pads", "clip", any other attribute of
                             # the op, or "input:K" (a scalar constant input)
    value: object            # ints for geometry, [min, max] for clip, else the new value


def apply_onnx(model, edits: list) -> list:
    """Apply ``edits`` to an onnx ModelProto in place; returns the node names changed."""
    import onnx
    from onnx import numpy_helper

    nodes = {n.name: n for n in model.graph.node}
    done = []
    for e in edits:
        n = nodes.get(e.node)
        if n is None:
            continue
        if e.attribute == "clip":
            if n.op_type != "Clip":
                continue
            names = []
            for which, v in zip(("min", "max"), e.value, strict=True):
                name = f"{n.name}_convlint_{which}"
                v = np.float32(np.clip(v, -3.4e38, 3.4e38))
                model.graph.initializer.append(numpy_helper.from_array(np.array(v), name))
                names.append(name)
            while len(n.input) < 3:
                n.input.append("")
            n.input[1], n.input[2] = names  # own constants: the old ones may be shared
        elif e.attribute not in ("strides", "dilations", "pads"):
            from convlint.analyzers.models.onnx_replay import set_attribute

            set_attribute(model, e.node, e.attribute, e.value)
        else:
            for a in list(n.attribute):
                if a.name in (e.attribute, "auto_pad"):
                    n.attribute.remove(a)
            n.attribute.append(onnx.helper.make_attribute(e.attribute, [int(x) for x in e.value]))
        done.append(e.node)
    return done
