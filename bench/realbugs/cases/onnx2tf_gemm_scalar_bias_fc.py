"""onnx2tf 1.29.24 (with its pinned TensorFlow 2.19 converter) turns a Gemm whose C input is a
1-element bias into a
FULLY_CONNECTED that TFLite refuses to run.

ONNX Gemm lets C broadcast to [M, N]; a C of shape [1] (one shared bias) is valid and onnxruntime
runs it.
onnx2tf/ops/Gemm.py (make_node) emits alpha * tf.matmul(x, w) + beta * z with z of shape [1]; the TF
2.19
TFLiteConverter that onnx2tf calls then fuses the Add into FULLY_CONNECTED's bias operand without
broadcasting it to
N elements, and the TFLite kernel rejects the model at allocate time: "fully_connected.cc:422
NumElements(bias) !=
SizeOfDimension(filter, 0) (1 != 8) ... (FULLY_CONNECTED) failed to prepare". (TF 2.21's converter
broadcasts it.)

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
    "id": "onnx2tf-gemm-scalar-bias-fc",
    "kind": "fault",
    "converter": "onnx2tf 1.29.24 (tensorflow 2.19.0 TFLiteConverter)",
    "upstream": "onnx2tf/ops/Gemm.py, make_node (alpha*matmul + beta*z with z of shape [1]) + "
    "the TF 2.19 TFLite converter's FullyConnected+Add fusion, rejected by "
    "tensorflow/lite/kernels/fully_connected.cc (NumElements(bias) != "
    "SizeOfDimension(filter, 0)) -- "
    "https://github.com/PINTO0309/onnx2tf/blob/main/onnx2tf/ops/Gemm.py",
    "summary": "Gemm with a 1-element C becomes FULLY_CONNECTED with a 1-element bias, which "
    "TFLite rejects when preparing the node.",
    "layer": ["fc"],
    # conversion-tool (README, "Culprit stages"): the target runtime refuses the node the
    # converter wrote (was "parameters")
    "stage": "conversion-tool",
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
        numpy_helper.from_array((rng.standard_normal((8, 16)) * 0.4).astype(np.float32), "fc_w"),
        # one bias shared by all 8 outputs
        numpy_helper.from_array(np.array([0.25], np.float32), "fc_c"),
        numpy_helper.from_array((rng.standard_normal((4, 8)) * 0.4).astype(np.float32), "head_w"),
        numpy_helper.from_array((rng.standard_normal(4) * 0.1).astype(np.float32), "head_b"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "fc_w", "fc_c"], ["h"], name="fc", transB=1),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "head_w", "head_b"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "gemm_scalar_bias",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    src = out / "source.onnx"
    onnx.save(model, str(src))
    return src, _run_onnx2tf(src, out)
