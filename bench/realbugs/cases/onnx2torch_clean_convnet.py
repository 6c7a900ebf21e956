"""Clean twin: a small ONNX convnet (Conv, BatchNormalization, Relu, MaxPool, Conv with asymmetric
pads, AveragePool with
count_include_pad=0, GlobalAveragePool, Flatten, Gemm with transB/alpha/beta, Softmax opset 13)
converted by
onnx2torch 1.5.15 into a torch.nn.Module and saved with torch.export; every op here is converted
faithfully
(checked against onnxruntime: max abs difference about 1e-7).

Environment: its own venv (CASE["env"] = "onnx2torch"):
  pip install torch==2.13.0 onnx onnxruntime numpy && pip install --no-deps onnx2torch==1.5.15
(onnx2torch imports torchvision only for NMS/RoiAlign; build() stubs it when it is missing).
"""
import pathlib

from _common import _stub_torchvision  # noqa: E402 (shared by the cases)

CASE = {
    "id": "onnx2torch-clean-convnet",
    "kind": "clean",
    "converter": "onnx2torch 1.5.15",
    "upstream": "https://github.com/ENOT-AutoDL/onnx2torch (onnx2torch.convert, "
    "node_converters/conv.py, batch_norm.py, max_pool.py, average_pool.py, gemm.py, "
    "activations.py)",
    "summary": "A small ONNX convnet converted by onnx2torch to a torch module and saved with "
    "torch.export; faithful.",
    "layer": [],
    "stage": None,
    "repairable": False,
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

    def arr(name, shape, scale=0.3):
        return numpy_helper.from_array(
            (rng.standard_normal(shape) * scale).astype(np.float32), name
        )

    inits = [
        arr("conv1_w", (8, 3, 3, 3)), arr("conv1_b", (8,), 0.1),
        arr("bn1_scale", (8,), 0.1), arr("bn1_bias", (8,), 0.1), arr("bn1_mean", (8,), 0.1),
        numpy_helper.from_array(rng.uniform(0.5, 1.5, 8).astype(np.float32), "bn1_var"),
        arr("conv2_w", (16, 8, 3, 3)), arr("conv2_b", (16,), 0.1),
        arr("fc_w", (10, 16)), arr("fc_b", (10,), 0.1),
    ]
    inits[2] = numpy_helper.from_array(
        (1.0 + rng.standard_normal(8) * 0.1).astype(np.float32), "bn1_scale"
    )
    nodes = [
        helper.make_node(
            "Conv",
            ["x", "conv1_w", "conv1_b"],
            ["c1"],
            name="conv1",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node(
            "BatchNormalization",
            ["c1", "bn1_scale", "bn1_bias", "bn1_mean", "bn1_var"],
            ["b1"],
            name="bn1",
            epsilon=1e-3,
        ),
        helper.make_node("Relu", ["b1"], ["r1"], name="relu1"),
        helper.make_node(
            "MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]
        ),
        helper.make_node(
            "Conv",
            ["p1", "conv2_w", "conv2_b"],
            ["c2"],
            name="conv2",
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[0, 0, 1, 1],
        ),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node(
            "AveragePool",
            ["r2"],
            ["a2"],
            name="pool2",
            kernel_shape=[3, 3],
            pads=[1, 1, 1, 1],
            count_include_pad=0,
        ),
        helper.make_node("GlobalAveragePool", ["a2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten", axis=1),
        helper.make_node(
            "Gemm", ["f", "fc_w", "fc_b"], ["l"], name="fc", transB=1, alpha=0.5, beta=2.0
        ),
        helper.make_node("Softmax", ["l"], ["y"], name="softmax", axis=-1),
    ]
    graph = helper.make_graph(
        nodes, "clean_convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    src = out / "source.onnx"
    onnx.save(model, str(src))

    module = convert(model).eval()
    x = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 16, 16)).astype(np.float32))
    ep = torch.export.export(module, (x,))
    tgt = out / "target.pt2"
    torch.export.save(ep, str(tgt))
    return src, tgt
