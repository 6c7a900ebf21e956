"""TFLiteConverter (TF 2.21) turns a flip over two non-adjacent axes into one REVERSE_V2 that TFLite
cannot run.

tf.reverse / keras.ops.flip over axes (1, 3) of an NHWC tensor is legalized to a single
`tfl.reverse_v2` with
axis tensor [1, 3]. The TFLite REVERSE_V2 kernel (tensorflow/lite/kernels/reverse.cc, Prepare/Eval)
only handles
a contiguous run of axes and fails with "Non-contiguous `axes` not supported ... Node number N
(REVERSE_V2)
failed to invoke" (see tensorflow/tensorflow issue #80831: contiguous axes only). The converter
neither checks this
nor splits the flip into one REVERSE_V2 per axis, so a plain float conversion yields a model that
cannot run.
"""
import pathlib

CASE = {
    "id": "tflite-reverse-noncontiguous-axes",
    "kind": "fault",
    "converter": "TFLiteConverter (tensorflow 2.21)",
    "upstream": "https://github.com/tensorflow/tensorflow/issues/80831 "
    "(tensorflow/lite/kernels/reverse.cc: REVERSE_V2 supports contiguous axes only)",
    "summary": "A flip over axes (1, 3) is converted to one REVERSE_V2 with non-contiguous axes, "
    "which the TFLite kernel rejects at invoke time.",
    "layer": ["flip"],
    # conversion-tool (README, "Culprit stages"): the target runtime refuses the node the
    # converter wrote (was "graph")
    "stage": "conversion-tool",
    # split into two REVERSE_V2 ops (one per axis), or transpose so the axes are adjacent
    "repairable": True,
    "env": "main",
    "diff_args": ["--unsafe-load"],  # the source carries a Lambda layer
}


def build(out: pathlib.Path):
    import os
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 4), batch_size=1, name="x")
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv")(inp)
    # mirror vertically and reverse the channel order (axes 1 and 3 of NHWC: not adjacent)
    h = keras.layers.Lambda(lambda t: __import__("keras").ops.flip(t, axis=(1, 3)),
                            output_shape=(8, 8, 6), name="flip")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    y = keras.layers.Dense(5, name="head")(h)
    model = keras.Model(inp, y, name="flipnet")
    src = out / "flipnet.keras"
    model.save(src)
    tgt = out / "flipnet.tflite"
    tgt.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return src, tgt
