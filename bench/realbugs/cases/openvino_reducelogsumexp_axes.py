"""OpenVINO 2026.4's ONNX frontend reduces an opset-13 ReduceLogSumExp over EVERY axis, ignoring
its `axes` attribute.

From opset 13 to 17 ONNX keeps ReduceLogSumExp's (and ReduceL1's, ReduceLogSum's) axes in the
`axes` attribute; opset 18 moved them to an input. The frontend's translators for these opsets
read the axes as an input (`get_reduction_axes_from_input` in
src/frontends/onnx/frontend/src/op/reduce.cpp), find none, and fall back on all axes
(`get_dynamic_all_axes_range`: ShapeOf -> Range over the rank, visible in the IR it writes). A
channel log-sum-exp pooling (keepdims=1) then becomes one scalar for the whole tensor, and
broadcasting hides the change of shape: the fault is silent. The same model at opset 18 converts
correctly. Checked here with openvino==2026.4.1: ReduceMean/ReduceMax/ReduceL2 at opset 13 are
right, ReduceLogSumExp, ReduceL1 and ReduceLogSum are not.
"""
import pathlib

CASE = {
    "id": "openvino-reducelogsumexp-axes",
    "kind": "fault",
    "converter": "OpenVINO 2026.4.1 (ov.convert_model, ONNX frontend)",
    "upstream": "src/frontends/onnx/frontend/src/op/reduce.cpp (opset-13 reductions: axes read "
                "from an input, else all axes) -- https://github.com/openvinotoolkit/openvino/blob/master/src/frontends/onnx/"
                "frontend/src/op/reduce.cpp",
    "summary": "An opset-13 ReduceLogSumExp over the channel axis is converted into a reduction "
               "over all axes (the axes attribute is ignored); broadcasting keeps the output's "
               "shape.",
    "layer": ["lse"],
    "stage": "hyperparameters",
    "repairable": True,  # re-converting the source at opset 18 (axes as an input) is faithful
    "env": "main",
    "diff_args": [],
}


def build(out: pathlib.Path):
    import numpy as np
    import onnx
    import openvino as ov
    from onnx import TensorProto, helper, numpy_helper

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w1 = (rng.standard_normal((8, 3, 3, 3)) * 0.4).astype(np.float32)
    w2 = (rng.standard_normal((4, 8, 1, 1)) * 0.4).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "conv1_w"), numpy_helper.from_array(w2, "conv2_w")]
    nodes = [  # a spatial attention map from a log-sum-exp pooling over channels (CBAM-like)
        helper.make_node("Conv", ["x", "conv1_w"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("ReduceLogSumExp", ["r1"], ["l1"], name="lse", axes=[1], keepdims=1),
        helper.make_node("Sigmoid", ["l1"], ["a1"], name="gate"),
        helper.make_node("Mul", ["r1", "a1"], ["m1"], name="attend"),
        helper.make_node("Conv", ["m1", "conv2_w"], ["y"], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes, "lse_attention",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 12, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 12, 12])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    src = out / "source.onnx"
    onnx.save(model, str(src))
    tgt = out / "target.xml"
    ov.save_model(ov.convert_model(str(src)), str(tgt), compress_to_fp16=False)
    return src, tgt
