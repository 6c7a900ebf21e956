"""A Dense layer on a rank-7 tensor converts to a FULLY_CONNECTED that TFLite's default XNNPACK
delegate cannot prepare.

TFLiteConverter (TF 2.21) keeps Keras Dense on a [1,2,2,2,2,2,3] input as one FULLY_CONNECTED
(keep_num_dims) with a
rank-7 output. tf.lite.Interpreter applies the XNNPACK delegate by default; the delegate claims the
node at partition
time and then fails in Prepare ("failed to delegate FULLY_CONNECTED node #0 ...
(TfLiteXNNPackDelegate) failed to
prepare"), aborting allocate_tensors. The same flatbuffer runs correctly with the builtin kernels
(OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES), so the fault is in the runtime's default
delegate, not the weights.
Upstream: google/XNNPACK issue #11036 and google-ai-edge/LiteRT issue #9215 (same rank-7
FULLY_CONNECTED defect).
"""
import pathlib

CASE = {
    "id": "tflite-xnnpack-rank7-fully-connected",
    "kind": "fault",
    "converter": "TFLiteConverter (tensorflow 2.21) + tf.lite.Interpreter default XNNPACK delegate",
    "upstream": "https://github.com/google/XNNPACK/issues/11036 (also https://github.com/google-ai-edge/LiteRT/issues/9215)",
    "summary": "Dense on a rank-7 tensor becomes a rank-7 FULLY_CONNECTED that the default "
    "XNNPACK delegate claims and then fails to prepare; builtin kernels run it fine.",
    "layer": ["fc"],
    "stage": "runtime",
    # run without the default delegate, or reshape the FC input to rank 2 and back in the target
    "repairable": True,
    "env": "main",
    "diff_args": [],
}


def build(out: pathlib.Path):
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    inp = keras.Input((2, 2, 2, 2, 2, 3), batch_size=1, name="x")
    h = keras.layers.Dense(4, name="fc")(inp)          # rank-7 FULLY_CONNECTED in the .tflite
    h = keras.layers.Activation("tanh", name="act")(h)
    y = keras.layers.Reshape((128,), name="flatten")(h)
    model = keras.Model(inp, y, name="rank7_dense")
    src = out / "rank7_dense.keras"
    model.save(src)
    tgt = out / "rank7_dense.tflite"
    tgt.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return src, tgt
