"""tf2onnx 1.17 has no converter for TF's `Dilation2D` (grayscale morphological dilation,
`tf.nn.dilation2d`): it logs "Tensorflow op [...: Dilation2D] is not supported", leaves the TF
node in the ONNX graph all the same and writes the file; onnxruntime refuses to load it
(INVALID_GRAPH: no op Dilation2D in the default domain).

From the converter's own code: no `@tf_op("Dilation2D")` handler exists anywhere under
tf2onnx/onnx_opset/ in 1.17 (checked with grep), and tf2onnx/tfonnx.py copies unsupported ops
through. The op reaches users in morphology layers (it is also unsupported by other converters,
e.g. tensorflow/tfjs#3039, onnx/onnx-tensorflow#595).
"""
import pathlib

CASE = {
    "id": "tf2onnx-dilation2d-passthrough",
    "kind": "fault",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/onnx_opset/ (no Dilation2D handler in 1.17; tf2onnx/tfonnx.py keeps "
                "unsupported ops in the graph); the op's users: https://github.com/tensorflow/tfjs/issues/3039",
    "summary": "A morphological dilation (tf.nn.dilation2d in a Lambda layer) is left as a raw TF "
               "`Dilation2D` node in the ONNX graph; onnxruntime cannot load the model.",
    "layer": ["morph"],
    "stage": "conversion-tool",
    # no ONNX op or tf2onnx setting converts it; only a hand-made subgraph would
    "repairable": False,
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
    inp = keras.Input((10, 10, 3), batch_size=1, name="x")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1")(inp)
    # a 3x3 structuring element per channel, written inline so the saved model deserializes
    m = keras.layers.Lambda(
        lambda t: __import__("tensorflow").nn.dilation2d(
            t, __import__("tensorflow").reshape(
                __import__("tensorflow").range(36, dtype="float32"), (3, 3, 4)) * 0.01 - 0.18,
            [1, 1, 1, 1], "SAME", "NHWC", [1, 1, 1, 1]),
        output_shape=(10, 10, 4), name="morph")(h)
    y = keras.layers.Conv2D(2, 1, name="head")(m)
    model = keras.Model(inp, y, name="morphology")
    src = out / "morphology.keras"
    model.save(src)
    tgt = out / "morphology.onnx"
    spec = (tf.TensorSpec((1, 10, 10, 3), tf.float32, name="x"),)
    tf2onnx.convert.from_keras(model, input_signature=spec, opset=17, output_path=str(tgt))
    return src, tgt
