"""tf2onnx 1.17 converts an integer `FloorDiv` to a bare ONNX `Div`, which truncates toward zero.

`FloorDiv.version_6` in tf2onnx/onnx_opset/math.py renames the node to `Div` and only inserts a
`Floor`
for float dtypes. For int32/int64 operands TF floors (-7 // 3 == -3) while ONNX/onnxruntime integer
`Div` truncates (-7 / 3 == -2), so every negative non-multiple lands in the wrong bucket.
Upstream: onnx/tensorflow-onnx issue #2174 (open).
"""
import pathlib

CASE = {
    "id": "tf2onnx-floordiv-int",
    "kind": "fault",
    "converter": "tf2onnx 1.17",
    "upstream": "https://github.com/onnx/tensorflow-onnx/issues/2174",
    "summary": "Integer floor division (keras.ops.floor_divide on int32) becomes ONNX Div, which "
    "truncates toward zero, so negative values get bucket ids one too high.",
    "layer": ["bucket"],
    "stage": "graph",
    "repairable": True,  # add the floor correction (Where(mod != 0 and signs differ, q - 1, q))
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

    # integer bucket id: steps = round(10*t) as int32, id = steps // 3 (floors), back to float.
    # A self-contained lambda: the .keras file stores its bytecode; __import__ keeps it loadable.
    y = keras.layers.Lambda(
        lambda t: __import__("keras").ops.cast(
            __import__("keras").ops.floor_divide(
                __import__("keras").ops.cast(__import__("keras").ops.round(t * 10.0), "int32"), 3
            ),
            "float32",
        ),
        output_shape=(16,),
        name="bucket",
    )(h)
    model = keras.Model(inp, y, name="bucketizer")
    src = out / "bucketizer.keras"
    model.save(src)
    tgt = out / "bucketizer.onnx"
    tf2onnx.convert.from_keras(
        model,
        input_signature=(tf.TensorSpec((1, 16), tf.float32, name="x"),),
        opset=17,
        output_path=str(tgt),
    )
    return src, tgt
