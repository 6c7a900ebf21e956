"""onnx2tf 1.29.24 ignores the ONNX Mod `fmod` attribute and always emits a floor modulo.

ONNX Mod with fmod=1 is C fmod: the result takes the sign of the DIVIDEND (torch.fmod exports to
it). onnx2tf/ops/Mod.py
(make_node) never reads `fmod`; it always builds tf.math.mod (TFLite FLOOR_MOD), whose result takes
the sign of the
DIVISOR. For a positive divisor every negative dividend that is not a multiple comes out shifted by
+divisor
(fmod(-0.7, 0.5) = -0.2 becomes 0.3), silently.

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
    "id": "onnx2tf-mod-fmod-ignored",
    "kind": "fault",
    "converter": "onnx2tf 1.29.24",
    "upstream": "onnx2tf/ops/Mod.py, make_node: the `fmod` attribute is never read; always "
    "tf.math.mod (floor mod) -- "
    "https://github.com/PINTO0309/onnx2tf/blob/main/onnx2tf/ops/Mod.py",
    "summary": "ONNX Mod(fmod=1) (sign of the dividend) is converted to FLOOR_MOD (sign of the "
    "divisor), so negative inputs are off by the divisor.",
    "layer": ["wrap"],
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
        numpy_helper.from_array((rng.standard_normal((16, 16)) * 0.5).astype(np.float32), "proj_w"),
        numpy_helper.from_array((rng.standard_normal(16) * 0.1).astype(np.float32), "proj_b"),
        numpy_helper.from_array(np.array(0.5, np.float32), "period"),
        numpy_helper.from_array((rng.standard_normal((8, 16)) * 0.5).astype(np.float32), "head_w"),
        numpy_helper.from_array((rng.standard_normal(8) * 0.1).astype(np.float32), "head_b"),
    ]
    nodes = [
        helper.make_node("Gemm", ["x", "proj_w", "proj_b"], ["h"], name="proj", transB=1),
        helper.make_node("Mod", ["h", "period"], ["m"], name="wrap", fmod=1),  # torch.fmod(h, 0.5)
        helper.make_node("Gemm", ["m", "head_w", "head_b"], ["y"], name="head", transB=1),
    ]
    graph = helper.make_graph(
        nodes, "fmod_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    src = out / "source.onnx"
    onnx.save(model, str(src))
    return src, _run_onnx2tf(src, out)
