"""onnx2torch 1.5.15 turns every ONNX CumSum without an explicit `reverse` attribute into a REVERSE
cumulative sum.

The ONNX spec gives CumSum's `reverse` attribute the default 0 (sum from the start of the axis), but
onnx2torch/node_converters/cumsum.py (the CumSum converter `_`, version 11/14) reads it with
`node_attributes.get('reverse', 1)`, so OnnxCumSum flips the axis before and after torch.cumsum:
y[t] = sum_{i>=t} x[i]
instead of sum_{i<=t} x[i]. The shape is unchanged, so the fault is silent.

Environment: its own venv (CASE["env"] = "onnx2torch"):
  pip install torch==2.13.0 onnx onnxruntime numpy && pip install --no-deps onnx2torch==1.5.15
(onnx2torch imports torchvision only for NMS/RoiAlign; build() stubs it when it is missing).
"""
import pathlib

from _common import _stub_torchvision  # noqa: E402 (shared by the cases)

CASE = {
    "id": "onnx2torch-cumsum-reverse-default",
    "kind": "fault",
    "converter": "onnx2torch 1.5.15",
    "upstream": "onnx2torch/node_converters/cumsum.py, CumSum converter: "
    "node_attributes.get('reverse', 1) (ONNX default is 0) -- "
    "https://github.com/ENOT-AutoDL/onnx2torch/blob/main/onnx2torch/node_converters/cumsum.py",
    "summary": "CumSum without a `reverse` attribute is converted to a reverse cumulative sum "
    "(wrong default 1 instead of 0).",
    "layer": ["cumsum"],
    "stage": "hyperparameters",
    "repairable": True,
    "env": "onnx2torch",
    "diff_args": [],
}


def build(out: pathlib.Path):
    import numpy as np
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    _stub_torchvision()
    from onnx2torch import convert

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal((6, 6)) * 0.5).astype(np.float32), "proj_w"),
        numpy_helper.from_array(np.array(1, np.int64), "cumsum_axis"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "proj_w"], ["h"], name="proj"),
        # reverse omitted: default 0
        helper.make_node("CumSum", ["h", "cumsum_axis"], ["c"], name="cumsum"),
        helper.make_node("Tanh", ["c"], ["y"], name="act"),
    ]
    graph = helper.make_graph(
        nodes, "cumsum_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    src = out / "source.onnx"
    onnx.save(model, str(src))

    module = convert(model).eval()
    x = torch.from_numpy(rng.uniform(-1, 1, (1, 8, 6)).astype(np.float32))
    # torch.export cannot trace OnnxCumSum (axis.item() is data-dependent): save TorchScript by
    # tracing.
    with torch.no_grad():
        traced = torch.jit.trace(module, (x,))
    tgt = out / "target.pt"
    torch.jit.save(traced, str(tgt))
    return src, tgt
