"""Builders shared by the tests of the torch-target patchers (tests/test_repair_torchscript.py,
tests/test_repair_exported.py): an ONNX source of a few nodes, and the one-module-per-node
wrapper onnx2torch writes."""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnx import TensorProto, helper, numpy_helper


def onnx_source(path: Path, nodes, inits, x_shape, y_shape) -> str:
    """x -> ``nodes`` -> y, opset 13, with ``inits`` as initializers."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)
    g = helper.make_graph(nodes, "g", [x],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)],
                          initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return str(path)


class Fn(torch.nn.Module):
    """A module computing ``fn``: onnx2torch's one module per ONNX node, named after it."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *xs):
        return self.fn(*xs)
