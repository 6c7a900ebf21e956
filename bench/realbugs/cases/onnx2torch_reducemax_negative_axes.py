"""onnx2torch 1.5.15 reduces the wrong dimensions for ReduceMax/ReduceMin/ReduceProd with negative
axes and keepdims=0.

onnx2torch/node_converters/reduce.py, OnnxReduceStaticAxes.forward: torch.max/min/prod take one dim
at a time, so it
loops over the sorted axes and shifts each later axis by the number of dims already removed (`axis -
passed_dims`).
That shift is only right for non-negative axes: for axes=[-2, -1] (a global max pool over H, W as
exporters write it)
it reduces H, then dim -1-1 = -2, which is now the CHANNEL axis, instead of W. With C == W the
output shape is the
expected [N, C] and the values are silently wrong (max over H and C per column instead of max over H
and W per channel).

Environment: its own venv (CASE["env"] = "onnx2torch"):
  pip install torch==2.13.0 onnx onnxruntime numpy && pip install --no-deps onnx2torch==1.5.15
(onnx2torch imports torchvision only for NMS/RoiAlign; build() stubs it when it is missing).
"""
import pathlib

from _common import _stub_torchvision  # noqa: E402 (shared by the cases)

CASE = {
    "id": "onnx2torch-reducemax-negative-axes",
    "kind": "fault",
    "converter": "onnx2torch 1.5.15",
    "upstream": "onnx2torch/node_converters/reduce.py, OnnxReduceStaticAxes.forward: "
    "dim=axis if self.keepdims else axis - passed_dims (wrong for negative axes) -- "
    "https://github.com/ENOT-AutoDL/onnx2torch/blob/main/onnx2torch/node_converters/reduce.py",
    "summary": "ReduceMax with axes=[-2,-1], keepdims=0 reduces H and then C instead of H and W "
    "(negative axes shifted as if positive).",
    "layer": ["global_max"],
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
        numpy_helper.from_array(
            (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "conv_w"
        ),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "conv_b"),
        numpy_helper.from_array((rng.standard_normal((4, 8)) * 0.3).astype(np.float32), "fc_w"),
        numpy_helper.from_array((rng.standard_normal(4) * 0.1).astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node(
            "Conv",
            ["x", "conv_w", "conv_b"],
            ["c"],
            name="conv",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("ReduceMax", ["r"], ["g"], name="global_max", axes=[-2, -1], keepdims=0),
        helper.make_node("Gemm", ["g", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "reducemax_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    src = out / "source.onnx"
    onnx.save(model, str(src))

    module = convert(model).eval()
    x = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 8, 8)).astype(np.float32))
    ep = torch.export.export(module, (x,))
    tgt = out / "target.pt2"
    torch.export.save(ep, str(tgt))
    return src, tgt
