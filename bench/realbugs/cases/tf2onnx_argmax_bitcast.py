"""Keras 3's `ops.argmax` on floats reaches tf2onnx 1.17 as a TF `Bitcast`, which it cannot convert.

keras/src/backend/tensorflow/numpy.py `argmax` maps -0.0 to -tiny before `tf.argmax`, using
`signbit`,
which is implemented with `tf.bitcast`. tf2onnx has no handler for the TF `Bitcast` op, so it leaves
the
node in the ONNX graph and onnxruntime rejects the model (INVALID_GRAPH: No Op registered for
Bitcast).
Upstream: onnx/tensorflow-onnx issue #1985 (open, "Unsupported tensorflow ops: ... Bitcast ...").
"""
import pathlib

CASE = {
    "id": "tf2onnx-argmax-bitcast",
    "kind": "fault",
    "converter": "tf2onnx 1.17",
    "upstream": "https://github.com/onnx/tensorflow-onnx/issues/1985",
    "summary": "A Keras 3 argmax head (keras.ops.argmax on float logits) leaves an unconverted TF "
               "`Bitcast` node in the ONNX graph; onnxruntime cannot load the model.",
    "layer": ["classify"],
    "stage": "conversion-tool",
    # the Bitcast-based -0.0 fix-up can be dropped (ArgMax ignores the sign of zero)
    "repairable": True,
    "env": "main",
    "diff_args": ["--unsafe-load"],   # the source carries a Lambda layer
}


def build(out: pathlib.Path):
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf
    import tf2onnx

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 6, 3), batch_size=1, name="x")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    logits = keras.layers.Conv2D(5, 1, name="logits")(h)
    # a self-contained lambda (the .keras file stores its bytecode; __import__ keeps it loadable)
    y = keras.layers.Lambda(
        lambda t: __import__("keras").ops.cast(
            __import__("keras").ops.argmax(t, axis=-1), "float32"
        ),
        output_shape=(6, 6),
        name="classify",
    )(logits)
    model = keras.Model(inp, y, name="segmenter")
    src = out / "segmenter.keras"
    model.save(src)
    tgt = out / "segmenter.onnx"
    tf2onnx.convert.from_keras(
        model,
        input_signature=(tf.TensorSpec((1, 6, 6, 3), tf.float32, name="x"),),
        opset=17,
        output_path=str(tgt),
    )
    return src, tgt
