"""Legalization repairs: a node the target runtime refuses rewritten into an exactly equivalent form
(repair/legalize.py), verified by checking the pair again; silence on faithful twins."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.pipeline import PipelineOptions, check_paths
from convlint.analyzers.repair import legalize
from convlint.analyzers.repair import tflite_graph as g

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

OPTS = DiffOptions(num_inputs=3, use_tvm=False)


def check(src: Path, tgt: Path, repair: bool = True):
    return check_paths(str(src), str(tgt), PipelineOptions(OPTS, repair=repair, unsafe_load=True))


def assert_repaired(src: Path, tgt: Path, rule: str) -> None:
    """The fault is found, its ``rule`` finding carries a verified repair in a new file, and
    that file checks equivalent against the source."""
    before, data = set(tgt.parent.iterdir()), tgt.read_bytes()
    r = check(src, tgt)
    assert r.verdict == "crash", [f.message for f in r.findings]
    (f,) = [f for f in r.findings if f.rule == rule]
    assert f.repair and f.repair.kind == "patch-graph" and f.repair.verified, f.repair
    out = Path(f.repair.output)
    assert out.exists() and out not in before and out != tgt
    assert tgt.read_bytes() == data  # the input is left as it was
    assert check(src, out, repair=False).verdict == "equivalent"


def assert_clean(src: Path, tgt: Path) -> None:
    """A faithful twin: no error finding, and no repaired file written."""
    before = set(tgt.parent.iterdir())
    r = check(src, tgt)
    assert r.verdict == "equivalent", [f.message for f in r.findings]
    assert not [f for f in r.findings if f.severity == "error"]
    assert set(tgt.parent.iterdir()) == before


# ---------------------------------------------------------------- ONNX ConvTranspose


def _deconv(path: Path, pads: list, output_padding: list | None, bias: bool,
            pad_after: list | None = None) -> Path:
    """``up``: a stride-2 ConvTranspose (2 -> 3 channels, 3x3) on a 4x4 input. With
    ``pad_after``, the same layer written as ConvTranspose, a zero Pad and the bias Add: the
    padded positions get no contribution, only the bias."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng, after = np.random.default_rng(0), pad_after or [0] * 4
    inits = [numpy_helper.from_array(rng.standard_normal((2, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b"),
             numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "b_shape"),
             numpy_helper.from_array(np.array([0, 0, *after[:2], 0, 0, *after[2:]], np.int64),
                                     "pads")]
    attrs = {"strides": [2, 2], "kernel_shape": [3, 3], "pads": pads}
    if output_padding:
        attrs["output_padding"] = output_padding
    inputs = ["x", "w", "b"] if bias and not pad_after else ["x", "w"]
    nodes = [helper.make_node("ConvTranspose", inputs, ["up_out"], name="up", **attrs)]
    if pad_after:
        nodes.append(helper.make_node("Pad", ["up_out", "pads"], ["y"], name="up_pad"))
    if pad_after and bias:
        nodes[-1].output[0] = "padded"
        nodes += [helper.make_node("Reshape", ["b", "b_shape"], ["b3"], name="up_bias"),
                  helper.make_node("Add", ["padded", "b3"], ["y"], name="up_add")]
    if not pad_after:
        nodes[0].output[0] = "y"
    graph = helper.make_graph(
        nodes, "deconv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("pads,bias,pad_after", [
    ([0, 0, -1, -1], False, [0, 0, 1, 1]),   # tf2onnx's form: moved into output_padding
    ([-1, 0, -2, -1], True, [1, 0, 2, 1]),   # begin and past-stride end: a Pad, the bias after
])
def test_convtranspose_negative_pads(tmp_path, pads, bias, pad_after):
    src = _deconv(tmp_path / "source.onnx", [0] * 4, None, bias, pad_after)
    (tmp_path / "t").mkdir()
    tgt = _deconv(tmp_path / "t" / "target.onnx", pads, None, bias)
    assert_repaired(src, tgt, "CL402")


def test_convtranspose_clean_twin(tmp_path):
    src = _deconv(tmp_path / "source.onnx", [0] * 4, None, False, [0, 0, 1, 1])
    (tmp_path / "t").mkdir()
    assert_clean(src, _deconv(tmp_path / "t" / "target.onnx", [0] * 4, [1, 1], False))


def test_rewrites_leave_other_nodes_alone(tmp_path):
    """A rewrite applies to the fault it removes only: legal pads, one run of axes -> None."""
    import onnx

    m = onnx.load(str(_deconv(tmp_path / "ok.onnx", [1, 1, 0, 0], [1, 1], True)))
    (rewrite,) = legalize.REWRITES[("onnx", "ConvTranspose")]
    assert rewrite.apply(m, m.graph.node[0], legalize.OnnxContext(list(m.graph.node))) is None
    assert len(m.graph.initializer) == 4  # nothing added
    tgt = _keras_tflite(tmp_path, "flip", _flip((2, 3)))[1]
    model = g.load(str(tgt))
    sg = model.subgraphs[0]
    rev = next(op for op in sg.operators if g.builtin_name(g.builtin_of(model, op)) == "REVERSE_V2")
    (rewrite,) = legalize.REWRITES[("tflite", "REVERSE_V2")]
    assert rewrite.apply(model, sg, rev) is None


# ---------------------------------------------------------------- TFLite


def _keras_tflite(d: Path, name: str, build) -> tuple[Path, Path]:
    """A Keras model made by ``build(keras)`` saved in ``d/name``, converted by TFLiteConverter."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = build(keras)
    (d / name).mkdir()
    src, tgt = d / name / f"{name}.keras", d / name / f"{name}.tflite"
    model.save(src)
    tgt.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return src, tgt


# literal lambdas: a saved Lambda layer keeps its code, not the values it closes over
FLIPS = {(1, 3): lambda t: __import__("keras").ops.flip(t, axis=(1, 3)),
         (2, 3): lambda t: __import__("keras").ops.flip(t, axis=(2, 3))}
WINDOW_CROPS = {6: lambda t: t[:, :, ::2, :, ::2, :], 5: lambda t: t[:, ::2, :, ::2, :]}


def _flip(axes: tuple):
    def build(keras):
        inp = keras.Input((4, 4, 3), batch_size=1)
        h = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inp)
        h = keras.layers.Lambda(FLIPS[axes], output_shape=(4, 4, 4), name="flip")(h)
        return keras.Model(inp, keras.layers.Dense(3, name="head")(keras.layers.Flatten()(h)))
    return build


def test_reverse_noncontiguous_axes(tmp_path):
    assert_repaired(*_keras_tflite(tmp_path, "flip", _flip((1, 3))), "CL402")


def test_reverse_clean_twin(tmp_path):
    assert_clean(*_keras_tflite(tmp_path, "flip", _flip((2, 3))))


def _dense(rank: int, bias: float | None = None):
    def build(keras):
        inp = keras.Input((2,) * (rank - 2) + (3,), batch_size=1)
        fc = keras.layers.Dense(4, name="fc")
        h = keras.layers.Activation("tanh", name="act")(fc(inp))
        if bias is not None:
            fc.bias.assign(np.full(4, bias, np.float32))
        return keras.Model(inp, keras.layers.Flatten(name="flatten")(h))
    return build


def test_fully_connected_one_element_bias(tmp_path):
    """onnx2tf's FULLY_CONNECTED with one bias for all output channels (made here by editing a
    faithful conversion: TF 2.21's converter broadcasts the bias itself)."""
    src, tgt = _keras_tflite(tmp_path, "fc", _dense(2, bias=0.25))
    model = g.load(str(tgt))
    sg = model.subgraphs[0]
    fc = next(op for op in sg.operators
              if g.builtin_name(g.builtin_of(model, op)) == "FULLY_CONNECTED")
    one = g.add_tensor(model, sg, "fc/bias1", [1], np.float32, np.array([0.25], np.float32))
    fc.inputs = [*map(int, fc.inputs[:2]), one]
    bad = tgt.with_name("fc.scalar_bias.tflite")
    bad.write_bytes(g.dump(model))
    assert_repaired(src, bad, "CL402")
    assert_clean(src, tgt)


def test_fully_connected_rank7_xnnpack(tmp_path):
    assert_repaired(*_keras_tflite(tmp_path, "fc", _dense(7)), "CL015")


def test_fully_connected_rank6_clean_twin(tmp_path):
    assert_clean(*_keras_tflite(tmp_path, "fc", _dense(6)))


def _window_slice(rank: int):
    def build(keras):
        shape = (2, 4, 2, 4, 2)[-(rank - 1):]
        inp = keras.Input(shape, batch_size=1)
        h = keras.layers.Dense(2, name="proj")(inp)
        h = keras.layers.Lambda(WINDOW_CROPS[rank], name="crop")(h)
        return keras.Model(inp, keras.layers.Flatten(name="flatten")(h))
    return build


def test_strided_slice_rank6(tmp_path):
    assert_repaired(*_keras_tflite(tmp_path, "slice", _window_slice(6)), "CL402")


def test_strided_slice_rank5_clean_twin(tmp_path):
    assert_clean(*_keras_tflite(tmp_path, "slice", _window_slice(5)))


# ---------------------------------------------------------------- ONNX: tf2onnx's unknown nodes


def _mediapipe_tflite(d: Path) -> tuple[Path, Path]:
    """A Keras model with a stride-2 3x3 Conv2DTranspose converted by TFLiteConverter (the clean
    twin), and the same file with its TRANSPOSE_CONV replaced by MediaPipe's custom
    ``Convolution2DTransposeBias`` (input, OHWI weights, a bias; options: SAME, stride 2, 2),
    named ``segment`` like MediaPipe's. On a 4x4 input SAME pads 0 before and 1 after, as TF's
    does, so both files have an 8x8 output."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    inp = keras.Input((4, 4, 3), batch_size=1)
    h = keras.layers.Conv2D(4, 1, name="enc")(inp)
    h = keras.layers.Conv2DTranspose(2, 3, strides=2, padding="same", name="segment")(h)
    model = keras.Model(inp, keras.layers.Activation("sigmoid", name="act")(h))
    clean = d / "segment.tflite"
    clean.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    m = g.load(str(clean))
    sg, s = m.subgraphs[0], g.schema()
    op = next(o for o in sg.operators if g.builtin_name(g.builtin_of(m, o)) == "TRANSPOSE_CONV")
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.CUSTOM
    code.customCode, code.version = "Convolution2DTransposeBias", 1
    m.operatorCodes.append(code)
    bias = g.add_tensor(m, sg, "segment/bias", [2], np.float32, np.array([0.5, -0.25], np.float32))
    op.opcodeIndex, op.builtinOptionsType, op.builtinOptions = len(m.operatorCodes) - 1, 0, None
    op.inputs = [int(op.inputs[2]), int(op.inputs[1]), bias]  # TRANSPOSE_CONV: shape, w, input
    op.customOptions = list(np.array([1, 2, 2], "<i4").tobytes())  # padding SAME, stride w, h
    sg.tensors[op.outputs[0]].name = "segment"
    custom = d / "segment.custom.tflite"
    custom.write_bytes(g.dump(m))
    return custom, clean


def _tf2onnx_tflite(src: Path) -> Path:
    import tf2onnx

    tgt = src.parent / "onnx" / src.with_suffix(".onnx").name
    tgt.parent.mkdir(exist_ok=True)
    tf2onnx.convert.from_tflite(str(src), opset=17, output_path=str(tgt))
    return tgt


def test_mediapipe_transpose_conv_bias(tmp_path):
    """tf2onnx copies the custom op as ``TFL_Convolution2DTransposeBias`` without its options:
    rewritten into ConvTranspose with the source's stride and padding; the builtin
    TRANSPOSE_CONV converts faithfully and is left alone."""
    custom, clean = _mediapipe_tflite(tmp_path)
    tgt = _tf2onnx_tflite(custom)
    import onnx

    assert "TFL_Convolution2DTransposeBias" in {n.op_type for n in onnx.load(str(tgt)).graph.node}
    assert_repaired(custom, tgt, "CL402")
    assert_clean(clean, _tf2onnx_tflite(clean))


INT32_MIN = -2**31


def _argmax(path: Path, sign_test: str) -> Path:
    """``classify``: argmax over the last axis of x [1, 4, 5] after Keras' negative-zero fix-up
    (``where(x == 0 and signbit(x), -tiny, x)``), as a float. ``sign_test``: ``"bitcast"``
    writes signbit as tf2onnx does (Bitcast, BitwiseAnd, Cast, Less: onnxruntime refuses it),
    ``"standard"`` as ``x < 0 or 1/x < 0``, ``"unmasked"`` the Bitcast chain feeding the Where
    directly (a NaN's sign would then matter), ``"none"`` without the fix-up (the source)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(np.array(INT32_MIN, np.int32), "sign_mask"),
             numpy_helper.from_array(np.array(-np.finfo(np.float32).tiny, np.float32), "tiny")]
    p = "model/classify"
    nodes = {
        "bitcast": [helper.make_node("Bitcast", ["x"], ["bits"], name=f"{p}/Bitcast", type=6),
                    helper.make_node("BitwiseAnd", ["bits", "sign_mask"], ["sign"],
                                     name=f"{p}/BitwiseAnd"),
                    helper.make_node("Cast", ["sign"], ["sign_f"], name=f"{p}/Less__10", to=1),
                    helper.make_node("Less", ["sign_f", "zero"], ["neg"], name=f"{p}/Less")],
        "standard": [helper.make_node("Less", ["x", "zero"], ["lt"], name=f"{p}/lt"),
                     helper.make_node("Reciprocal", ["x"], ["inv"], name=f"{p}/inv"),
                     helper.make_node("Less", ["inv", "zero"], ["inv_lt"], name=f"{p}/inv_lt"),
                     helper.make_node("Or", ["lt", "inv_lt"], ["neg"], name=f"{p}/Or")],
    }
    body = [] if sign_test == "none" else [
        helper.make_node("Equal", ["x", "zero"], ["is_zero"], name=f"{p}/Equal"),
        *nodes["bitcast" if sign_test == "unmasked" else sign_test],
        helper.make_node("And", ["is_zero", "neg"], ["neg_zero"], name=f"{p}/LogicalAnd"),
        helper.make_node("Where", ["neg" if sign_test == "unmasked" else "neg_zero", "tiny", "x"],
                         ["fixed"], name=f"{p}/Select")]
    graph = helper.make_graph(
        [*body, helper.make_node("ArgMax", ["fixed" if body else "x"], ["idx"], name="classify",
                                 axis=-1, keepdims=0),
         helper.make_node("Cast", ["idx"], ["y"], name=f"{p}/Cast", to=1)],
        "argmax", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_bitcast_sign_test(tmp_path):
    src = _argmax(tmp_path / "source.onnx", "none")
    (tmp_path / "t").mkdir()
    assert_repaired(src, _argmax(tmp_path / "t" / "target.onnx", "bitcast"), "CL402")
    assert_clean(src, _argmax(tmp_path / "t" / "standard.onnx", "standard"))


def test_bitcast_sign_test_exact(tmp_path):
    """The rewritten test agrees with the sign bit on -0, +0, infinities, subnormals and NaNs
    of either sign (where ``x == 0`` masks it); unmasked, a NaN's sign would show, and the
    chain is left alone."""
    import onnx
    import onnxruntime as ort

    m = onnx.load(str(_argmax(tmp_path / "bitcast.onnx", "bitcast")))
    m.graph.output.append(onnx.helper.make_tensor_value_info("neg_zero", onnx.TensorProto.BOOL,
                                                             [1, 4, 5]))
    done = legalize._legalize_onnx(m)
    assert done is not None and "Bitcast" not in {n.op_type for n in onnx.load_from_string(
        done[0]).graph.node}
    nan = np.float32(np.nan)
    x = np.array([-0.0, 0.0, -1.0, 1.0, nan, -nan, np.inf, -np.inf, 1e-45, -1e-45] * 2,
                 np.float32).reshape(1, 4, 5)
    got = ort.InferenceSession(done[0]).run(["neg_zero"], {"x": x})[0]
    assert np.array_equal(got, (x == 0) & np.signbit(x))
    unmasked = onnx.load(str(_argmax(tmp_path / "unmasked.onnx", "unmasked")))
    assert legalize._legalize_onnx(unmasked) is None
