"""onnx2torch 1.5.15 ignores ConvTranspose's `output_shape` attribute, so the converted layer has
the wrong output size.

ONNX ConvTranspose may give `output_shape` instead of `pads`: the runtime then derives the padding
(total = stride*(in-1) + output_padding + kernel - output_shape, split begin/end).
onnx2torch/node_converters/conv.py
(the Conv/ConvTranspose converter `_`) never reads `output_shape`; it builds nn.ConvTranspose2d from
`pads`
(default 0) and `output_padding` only, so a stride-2 3x3 deconvolution from 4x4 to the requested 8x8
comes out 9x9
(one extra row and column, every output position shifted).

Environment: its own venv (CASE["env"] = "onnx2torch"):
  pip install torch==2.13.0 onnx onnxruntime numpy && pip install --no-deps onnx2torch==1.5.15
(onnx2torch imports torchvision only for NMS/RoiAlign; build() stubs it when it is missing).
"""
import pathlib

from _common import _stub_torchvision  # noqa: E402 (shared by the cases)

CASE = {
    "id": "onnx2torch-convtranspose-output-shape",
    "kind": "fault",
    "converter": "onnx2torch 1.5.15",
    "upstream": "onnx2torch/node_converters/conv.py, Conv/ConvTranspose converter: the "
    "ConvTranspose `output_shape` attribute is never read (padding from `pads` only) -- "
    "https://github.com/ENOT-AutoDL/onnx2torch/blob/main/onnx2torch/node_converters/conv.py",
    "summary": "ConvTranspose with output_shape=[8,8] (stride 2, kernel 3, 4x4 input) is "
    "converted without the implied padding and outputs 9x9.",
    "layer": ["deconv"],
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
            (rng.standard_normal((8, 4, 3, 3)) * 0.3).astype(np.float32), "enc_w"
        ),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "enc_b"),
        numpy_helper.from_array(
            (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), "deconv_w"
        ),
        numpy_helper.from_array((rng.standard_normal(3) * 0.1).astype(np.float32), "deconv_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "enc_w", "enc_b"], ["e"], name="enc", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["e"], ["r"], name="relu"),
        helper.make_node("ConvTranspose", ["r", "deconv_w", "deconv_b"], ["d"], name="deconv",
                         kernel_shape=[3, 3], strides=[2, 2], output_shape=[8, 8]),
        helper.make_node("Sigmoid", ["d"], ["y"], name="out_act"),
    ]
    graph = helper.make_graph(
        nodes, "deconv_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    src = out / "source.onnx"
    onnx.save(model, str(src))

    module = convert(model).eval()
    x = torch.from_numpy(rng.uniform(-1, 1, (1, 4, 8, 8)).astype(np.float32))
    ep = torch.export.export(module, (x,))
    tgt = out / "target.pt2"
    torch.export.save(ep, str(tgt))
    return src, tgt
