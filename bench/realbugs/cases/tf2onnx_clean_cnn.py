"""Clean twin: a small Keras CNN classifier (Conv2D+BatchNorm+ReLU, depthwise-separable block,
max pooling, global average pooling, Dense+softmax) converted faithfully by tf2onnx 1.17
(`tf2onnx.convert.from_keras`, opset 17). onnxruntime matches Keras within float noise.
"""
import pathlib

CASE = {
    "id": "tf2onnx-clean-cnn",
    "kind": "clean",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/convert.py: from_keras",
    "summary": "A small CNN classifier (conv/BN/ReLU, separable conv, pooling, dense softmax) "
    "converted Keras -> ONNX by tf2onnx.convert.from_keras at opset 17.",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": [],
}


def build(out: pathlib.Path):
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np
    import tensorflow as tf
    import tf2onnx

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    L = keras.layers
    inp = keras.Input((16, 16, 3), batch_size=1, name="x")
    h = L.Conv2D(8, 3, padding="same", use_bias=False, name="stem_conv")(inp)
    h = L.BatchNormalization(name="stem_bn")(h)
    h = L.ReLU(name="stem_relu")(h)
    h = L.MaxPooling2D(2, name="pool1")(h)
    h = L.SeparableConv2D(16, 3, padding="same", name="sep1")(h)
    h = L.BatchNormalization(name="sep1_bn")(h)
    h = L.ReLU(max_value=6.0, name="sep1_relu6")(h)
    h = L.GlobalAveragePooling2D(name="gap")(h)
    y = L.Dense(5, activation="softmax", name="classifier")(h)
    model = keras.Model(inp, y, name="small_cnn")
    # give the batch-norm layers non-trivial statistics so they are not identities
    rng = np.random.default_rng(0)
    for name in ("stem_bn", "sep1_bn"):
        bn = model.get_layer(name)
        c = bn.gamma.shape[0]
        bn.set_weights(
            [
                rng.uniform(0.5, 1.5, c).astype("float32"),
                rng.uniform(-0.2, 0.2, c).astype("float32"),
                rng.uniform(-0.2, 0.2, c).astype("float32"),
                rng.uniform(0.5, 1.5, c).astype("float32"),
            ]
        )
    src = out / "small_cnn.keras"
    model.save(src)
    tgt = out / "small_cnn.onnx"
    tf2onnx.convert.from_keras(
        model,
        input_signature=(tf.TensorSpec((1, 16, 16, 3), tf.float32, name="x"),),
        opset=17,
        output_path=str(tgt),
    )
    return src, tgt
