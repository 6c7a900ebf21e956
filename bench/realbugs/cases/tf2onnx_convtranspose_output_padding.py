"""tf2onnx 1.17 emits negative `pads` for a Conv2DTranspose that uses `output_padding`.

For a constant output shape, the `Conv2DBackpropInput` handler (ConvTranspose.version_1 in
tf2onnx/onnx_opset/nn.py) computes total_padding = stride*(in-1) + dilated_kernel - out and splits
it
into begin/end pads. Keras' output_padding makes `out` larger than the full transposed convolution,
so total_padding < 0 and the ONNX ConvTranspose gets pads [0,0,-1,-1]; onnxruntime refuses to load
it
("Attribute pads must not contain negative values") instead of using output_padding/output_shape.
"""
import pathlib

CASE = {
    "id": "tf2onnx-convtranspose-output-padding",
    "kind": "fault",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/onnx_opset/nn.py: ConvTranspose.version_1 (Conv2DBackpropInput pads "
    "from a constant output shape, total_padding may be negative)",
    "summary": "Conv2DTranspose(padding='valid', output_padding=1) is converted to an ONNX "
    "ConvTranspose with negative pads, which onnxruntime rejects.",
    "layer": ["up1"],
    # conversion-tool (README, "Culprit stages"): the runtime refuses to load the node the converter
    # wrote
    "stage": "conversion-tool",
    # pads -> 0 and output_padding=[1,1] (or output_shape) gives the same result
    "repairable": True,
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
    inp = keras.Input((8, 8, 3), batch_size=1, name="x")
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="down1")(inp)
    h = keras.layers.Conv2DTranspose(
        4, 4, strides=2, padding="valid", output_padding=1, name="up1"
    )(h)
    y = keras.layers.Conv2D(2, 1, name="head")(h)
    model = keras.Model(inp, y, name="updecoder")
    src = out / "updecoder.keras"
    model.save(src)
    tgt = out / "updecoder.onnx"
    tf2onnx.convert.from_keras(
        model,
        input_signature=(tf.TensorSpec((1, 8, 8, 3), tf.float32, name="x"),),
        opset=17,
        output_path=str(tgt),
    )
    return src, tgt
