"""tf2onnx 1.17 turns Keras 3's exact GELU into an `Erfc` node, which is not an ONNX operator.

TensorFlow 2.21 computes `tf.nn.gelu(approximate=False)` as 0.5*x*erfc(-x/sqrt(2)); tf2onnx has a
handler for `Erf` (tf2onnx/onnx_opset/math.py) but none for `Erfc`, so it copies the TF op into the
ONNX graph unchanged and onnxruntime rejects the model (INVALID_GRAPH: No Op registered for Erfc).
Upstream: onnx/tensorflow-onnx PR #2463 (open) and the Erfc comments on issue #2347.
"""
import pathlib

CASE = {
    "id": "tf2onnx-gelu-erfc",
    "kind": "fault",
    "converter": "tf2onnx 1.17",
    "upstream": "https://github.com/onnx/tensorflow-onnx/pull/2463",
    "summary": "Exact GELU (Dense activation='gelu') is emitted as an unconverted TF `Erfc` node "
    "that onnxruntime cannot load.",
    "layer": ["fc1"],
    "stage": "conversion-tool",
    "repairable": True,  # Erfc(x) == 1 - Erf(x): patch the node, or re-emit an Erf/Gelu subgraph
    "env": "main",
    "diff_args": [],
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
    inp = keras.Input((16,), batch_size=1, name="x")
    # exact GELU (approximate=False)
    h = keras.layers.Dense(32, activation="gelu", name="fc1")(inp)
    y = keras.layers.Dense(4, name="head")(h)
    model = keras.Model(inp, y, name="gelu_mlp")
    src = out / "gelu_mlp.keras"
    model.save(src)
    tgt = out / "gelu_mlp.onnx"
    tf2onnx.convert.from_keras(
        model,
        input_signature=(tf.TensorSpec((1, 16), tf.float32, name="x"),),
        opset=17,
        output_path=str(tgt),
    )
    return src, tgt
