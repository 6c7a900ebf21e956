"""TF SavedModel (a directory) on TensorFlow, through its ``serving_default`` signature.

``tf.saved_model.load`` restores graphs and variables; it runs no Python code from the model
(custom Python objects are not revived), but the graph's own ops run when the model is called.
Per-layer native intermediates are not available for a SavedModel; use the TVM capture.
"""

from __future__ import annotations

import os

import numpy as np

from convlint.analyzers.models.base import LayerInfo, Runner, TensorSpec, layout_hint
from convlint.analyzers.models.tf_common import (
    first_working,
    import_tf,
    tf_function_to_tvm_builders,
)

_PLUMBING = {"Placeholder", "Const", "Identity", "IdentityN", "NoOp", "ReadVariableOp",
             "StatefulPartitionedCall", "PartitionedCall", "VarHandleOp", "AssignVariableOp",
             "_Arg", "_Retval", "Shape", "StridedSlice", "Pack"}


def _attrs(node) -> dict:
    out = {}
    for key in ("strides", "padding", "dilations", "data_format", "epsilon", "explicit_paddings",
                "transpose_a", "transpose_b", "approximate", "alpha"):
        if key not in node.attr:
            continue
        a = node.attr[key]
        kind = a.WhichOneof("value")
        if kind == "list":
            out[key] = list(a.list.i) or list(a.list.f)
        elif kind == "s":
            out[key] = a.s.decode()
        elif kind in ("i", "f", "b"):
            out[key] = getattr(a, kind)
    return out


class SavedModelRunner(Runner):
    format = "savedmodel"
    backend = "tf"

    def _load_impl(self) -> None:
        if not os.path.isfile(os.path.join(self.path, "saved_model.pb")):
            raise ValueError("the directory holds no saved_model.pb")
        tf = import_tf()
        self.obj = tf.saved_model.load(self.path)
        sigs = self.obj.signatures
        if not sigs:
            raise ValueError("the SavedModel has no signatures to call")
        self.sig_name = "serving_default" if "serving_default" in sigs else next(iter(sigs))
        self.fn = sigs[self.sig_name]

    def _input_specs_impl(self):
        _, kw = self.fn.structured_input_signature
        out = []
        for name, s in kw.items():
            dims = tuple(None if d is None else int(d) for d in s.shape)
            out.append(TensorSpec(name, dims, s.dtype.name, layout_hint(dims)))
        return out

    def _output_specs_impl(self):
        out = []
        for name, s in self.fn.structured_outputs.items():
            dims = tuple(None if d is None else int(d) for d in s.shape)
            out.append(TensorSpec(name, dims, s.dtype.name, layout_hint(dims)))
        return out

    def _run_impl(self, inputs):
        tf = import_tf()
        specs = self.input_specs()
        vals = list(inputs.values())
        kw = {s.name: tf.constant(inputs.get(s.name, vals[i])) for i, s in enumerate(specs)}
        res = self.fn(**kw)
        return {k: np.asarray(res[k]) for k in self.fn.structured_outputs}

    def _layers_impl(self):
        """Compute ops from the signature's graph and the functions it calls, each with the
        variables of its scope (``res_conv1_1/convolution`` -> variables ``res_conv1/...``)."""
        import re

        groups: dict = {}
        for v in getattr(self.obj, "variables", []):
            name = v.name.split(":")[0]
            scope = name.rsplit("/", 1)[0] if "/" in name else name
            groups.setdefault(scope, {})[name] = np.asarray(v.numpy())
        gdef = self.fn.graph.as_graph_def()
        nodes = list(gdef.node)
        for f in gdef.library.function:
            nodes.extend(f.node_def)
        layers, used = [], set()
        for node in nodes:
            if node.op in _PLUMBING:
                continue
            owner = None
            for seg in node.name.split("/")[:-1]:
                for cand in (seg, re.sub(r"_\d+$", "", seg)):
                    if cand in groups:
                        owner = cand
                        break
                if owner:
                    break
            # a scope's variables go to its first op (the convolution, the matmul, the BN add)
            weights = groups[owner] if owner and owner not in used else {}
            if weights:
                used.add(owner)
            layers.append(LayerInfo(node.name, node.op, dict(weights), _attrs(node),
                                    [i for i in node.input if not i.startswith("^")], [node.name]))
        layers.extend(LayerInfo(k, "Variables", w) for k, w in groups.items() if k not in used)
        return layers

    def _intermediates_impl(self, inputs):
        return {}

    def _tvm_import_impl(self, input_shapes):
        specs = self.input_specs()
        fn = self.fn
        out_keys = list(fn.structured_outputs)

        def call(*xs):
            res = fn(**{s.name: x for s, x in zip(specs, xs, strict=True)})
            return [res[k] for k in out_keys] if len(out_keys) > 1 else res[out_keys[0]]

        return first_working(tf_function_to_tvm_builders(call, specs, input_shapes), self.tvm_avoid)
