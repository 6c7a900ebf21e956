"""tf2onnx 1.17 lowers an integer `FloorMod` to x - Div(x, y)*y with a truncating integer `Div`.

`FloorMod.version_7` in tf2onnx/onnx_opset/math.py builds Sub(x, Mul(Div(x, y), y)) and inserts the
`Floor` only for float dtypes. For int32 operands ONNX/onnxruntime `Div` truncates toward zero, so
the
result is C-style fmod (sign of the dividend: -7 mod 3 -> -1) instead of TF's floor-mod (-7 mod 3 ->
2).
Same root cause as onnx/tensorflow-onnx issue #2174 (integer floor division), in the FloorMod
handler.
"""
import pathlib

CASE = {
    "id": "tf2onnx-floormod-int",
    "kind": "fault",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/onnx_opset/math.py: FloorMod.version_7 (Floor only for float dtypes); "
    "see https://github.com/onnx/tensorflow-onnx/issues/2174",
    "summary": "Integer keras.ops.mod (TF FloorMod on int32) becomes x - trunc_div(x, y)*y, so "
    "negative inputs get a negative remainder instead of TF's non-negative floor-mod.",
    "layer": ["phase"],
    "stage": "graph",
    "repairable": True,  # ONNX Mod with fmod=0 (opset >= 10) is floor-mod for integers
    "env": "main",
    "diff_args": ["--unsafe-load"],  # the source carries a Lambda layer
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
    h = keras.layers.Dense(16, name="proj")(inp)
    # integer phase in a period of 4: steps = round(10*t) as int32, phase = steps mod 4 (floor-mod).
    # A self-contained lambda: the .keras file stores its bytecode; __import__ keeps it loadable.
    ph = keras.layers.Lambda(
        lambda t: __import__("keras").ops.cast(
            __import__("keras").ops.mod(
                __import__("keras").ops.cast(__import__("keras").ops.round(t * 10.0), "int32"), 4
            ),
            "float32",
        ),
        output_shape=(16,),
        name="phase",
    )(h)
    y = keras.layers.Dense(8, name="embed")(ph)
    model = keras.Model(inp, y, name="phase_embed")
    src = out / "phase_embed.keras"
    model.save(src)
    tgt = out / "phase_embed.onnx"
    tf2onnx.convert.from_keras(
        model,
        input_signature=(tf.TensorSpec((1, 16), tf.float32, name="x"),),
        opset=17,
        output_path=str(tgt),
    )
    return src, tgt
