"""TFLiteConverter (TF 2.21) emits a STRIDED_SLICE on a rank-6 tensor, which no TFLite kernel can
prepare.

A window-partitioned feature map ([1, 2, 4, 2, 4, C]: H and W split into 2x2 windows of 4x4, as in
window attention)
that is subsampled inside each window (x[:, :, ::2, :, ::2, :]) is legalized to a single
tfl.strided_slice on the 6-D tensor.
The TFLite kernel (tensorflow/lite/kernels/strided_slice.cc, Prepare) only supports 1-D to 5-D
inputs and fails with
"StridedSlice op only supports 1D-5D input arrays ... (STRIDED_SLICE) failed to prepare" (the
default XNNPACK
delegate does not take a strided slice with steps of 2, so the builtin kernel runs it; builtin and
reference both fail). The converter neither rejects the op nor rewrites it to a lower rank (same
kernel limit
reported, then at 4-D, in PINTO0309/PINTO_model_zoo issue #52).
"""
import pathlib

CASE = {
    "id": "tflite-strided-slice-rank6",
    "kind": "fault",
    "converter": "TFLiteConverter (tensorflow 2.21)",
    "upstream": "tensorflow/lite/kernels/strided_slice.cc (Prepare: 1D-5D inputs only); "
    "https://github.com/PINTO0309/PINTO_model_zoo/issues/52",
    "summary": "A strided (step 2) slice of a rank-6 window tensor is converted to a rank-6 "
    "STRIDED_SLICE that the TFLite kernel refuses to prepare.",
    "layer": ["window_crop"],
    # conversion-tool (README, "Culprit stages"): the target runtime refuses the node the
    # converter wrote (was "graph")
    "stage": "conversion-tool",
    # reshape to rank <= 5 around the slice (merge the batch and window-row axes), or two slices
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
    inp = keras.Input((8, 8, 3), batch_size=1, name="x")
    h = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    h = keras.layers.Reshape((2, 4, 2, 4, 4), name="to_windows")(h)      # [1, 2, 4, 2, 4, 4]
    h = keras.layers.Lambda(lambda t: t[:, :, ::2, :, ::2, :], output_shape=(2, 2, 2, 2, 4),
                            # every other row/col of each window
                            name="window_crop")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    y = keras.layers.Dense(5, name="head")(h)
    model = keras.Model(inp, y, name="window_crop_net")
    src = out / "window_crop_net.keras"
    model.save(src)
    tgt = out / "window_crop_net.tflite"
    tgt.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return src, tgt
