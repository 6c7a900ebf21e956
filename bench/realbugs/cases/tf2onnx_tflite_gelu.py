"""tf2onnx 1.17's TFLite front end has no handler for the builtin TFLite `GELU` operator.

TFLiteConverter (TF 2.21) fuses Keras GELU into one builtin `GELU` op (with an `approximate` flag).
tf2onnx/tflite_handlers/ (tfl_direct.py, tfl_math.py, ...) map many TFL_* ops to TF/ONNX ops but not
TFL_GELU, so `python -m tf2onnx.convert --tflite` only logs "Unsupported ops" and writes a node of
type
`TFL_GELU` into the ONNX graph; onnxruntime rejects the model (INVALID_GRAPH: No Op registered).
"""
import pathlib

CASE = {
    "id": "tf2onnx-tflite-gelu",
    "kind": "fault",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/tflite_handlers/tfl_direct.py (no @tfl_op('TFL_GELU') handler anywhere in "
    "tf2onnx/tflite_handlers/; unsupported TFLite ops are copied through as 'TFL_*' nodes)",
    "summary": "A TFLite model's builtin GELU op is copied into the ONNX graph as an unknown "
    "`TFL_GELU` node, so onnxruntime cannot load the converted model.",
    # the TFLite GELU op is named after its output tensor; the Keras layer it came from is 'ffn_in'
    "layer": [
        "ffn_block_1/ffn_in_1/Gelu/mul_2;ffn_block_1/ffn_in_1/Gelu/mul/x;ffn_block_1/ffn_in_1/Gelu/mul;"
        "ffn_block_1/ffn_in_1/Gelu/Neg;ffn_block_1/ffn_in_1/Gelu/Cast/x;ffn_block_1/ffn_in_1/Gelu/mul_1;"
        "ffn_block_1/ffn_in_1/Gelu/Erfc",
        "ffn_in",
    ],
    "stage": "conversion-tool",
    "repairable": True,  # GELU can be re-emitted as Erf-based ONNX ops (or ONNX Gelu at opset 20)
    "env": "main",
    "diff_args": [],
}


def build(out: pathlib.Path):
    import os
    import subprocess
    import sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import tensorflow as tf

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 16), batch_size=1, name="x")
    h = keras.layers.LayerNormalization(name="ln")(inp)
    h = keras.layers.Dense(32, activation="gelu", name="ffn_in")(h)
    h = keras.layers.Dense(16, name="ffn_out")(h)
    y = keras.layers.Add(name="residual")([inp, h])
    model = keras.Model(inp, y, name="ffn_block")
    src = out / "ffn_block.tflite"
    src.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    tgt = out / "ffn_block.onnx"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--tflite",
            str(src),
            "--output",
            str(tgt),
            "--opset",
            "17",
        ],
        check=True,
        capture_output=True,
    )
    return src, tgt
