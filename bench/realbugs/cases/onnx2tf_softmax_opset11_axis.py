"""onnx2tf 1.29.24 converts an opset-11 Softmax as if it had opset-13 semantics (softmax along one
axis only).

Before opset 13, ONNX Softmax(axis=a) coerces the input to 2-D [prod(dims[:a]), prod(dims[a:])] and
normalizes over
ALL trailing dims from `a` on (and its default axis is 1). onnx2tf/ops/Softmax.py (make_node) never
looks at the
opset: it reads `axis` (default rank-1) and calls tf.nn.softmax(logits, axis), normalizing over dim
`a` alone. For a
[1, 4, 6] tensor with axis=1 each column of 4 sums to 1 instead of all 24 values, silently.

Environment: its own venv (CASE["env"] = "onnx2tf"), with that venv's bin/ on PATH:
  pip install onnx2tf==1.29.24 tensorflow==2.19.0 tf_keras==2.19.0 onnx==1.19.1 \
      onnxruntime==1.23.0 "numpy<2" onnx_graphsurgeon sng4onnx psutil onnxsim==0.4.36
build() writes the dummy calibration_image_sample_data_20x128x128x3_float32.npy into the working
directory so that
onnx2tf does not try to download it, and runs onnx2tf with its defaults (onnxsim on).
"""
import pathlib

from _common import _run_onnx2tf  # noqa: E402 (shared by the cases)

CASE = {
    "id": "onnx2tf-softmax-opset11-axis",
    "kind": "fault",
    "converter": "onnx2tf 1.29.24",
    "upstream": "onnx2tf/ops/Softmax.py, make_node: opset < 13 flatten-to-2D semantics ignored "
    "(tf.nn.softmax over `axis` only, default rank-1) -- "
    "https://github.com/PINTO0309/onnx2tf/blob/main/onnx2tf/ops/Softmax.py",
    "summary": "Opset-11 Softmax(axis=1) on a [1,4,6] tensor normalizes over axis 1 only instead "
    "of over the flattened trailing 24 values.",
    "layer": ["attn_softmax"],
    "stage": "hyperparameters",
    "repairable": True,
    "env": "onnx2tf",
    "diff_args": [],
}


def build(out: pathlib.Path):
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array((rng.standard_normal((24, 16)) * 0.5).astype(np.float32), "proj_w"),
        numpy_helper.from_array((rng.standard_normal(24) * 0.1).astype(np.float32), "proj_b"),
        numpy_helper.from_array(np.array([1, 4, 6], np.int64), "heads_shape"),
        numpy_helper.from_array(np.array([1, 24], np.int64), "flat_shape"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "proj_w", "proj_b"], ["h"], name="proj", transB=1),
        helper.make_node("Reshape", ["h", "heads_shape"], ["r"], name="to_heads"),
        # opset 11: over dims 1.. flattened
        helper.make_node("Softmax", ["r"], ["s"], name="attn_softmax", axis=1),
        helper.make_node("Reshape", ["s", "flat_shape"], ["y"], name="flatten"),
    ]
    graph = helper.make_graph(
        nodes, "softmax11_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    src = out / "source.onnx"
    onnx.save(model, str(src))
    return src, _run_onnx2tf(src, out)
