"""The independent oracle (layer replay), the attribute search, crash localization through the
runnable part of a target, and not-the-same-model. ONNX pairs built here with onnx.helper: the
source and the target differ only where each test says; every fault has a clean twin."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper as h
from onnx import numpy_helper as nh

from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.pipeline import PipelineOptions, check_paths

OPTS = DiffOptions(num_inputs=4, use_tvm=False)


def conv_block(path, *, alpha=0.1, mode="linear", ctm="half_pixel", seed=0, erfc=False,
               tail="erf"):
    """conv1 -> act1 (LeakyRelu) -> up (Resize x2) -> conv2 -> a tail: ``erf`` (1 - Erf, in
    standard ops), ``erfc`` (what tf2onnx writes for it: no ONNX op), ``gelu_tanh`` (tanh GELU in
    standard ops) or ``tfl`` (tf2onnx --tflite's pass-through TFL_GELU: no ONNX op)."""
    tail = "erfc" if erfc else tail
    rng = np.random.default_rng(seed)
    inits = [nh.from_array(rng.normal(size=(8, 3, 3, 3)).astype(np.float32), "w1"),
             nh.from_array(rng.normal(size=(4, 8, 3, 3)).astype(np.float32), "w2"),
             nh.from_array(np.array([1, 1, 2, 2], np.float32), "sc")]
    nodes = [h.make_node("Conv", ["x", "w1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             h.make_node("LeakyRelu", ["c1"], ["a1"], name="act1", alpha=alpha),
             h.make_node("Resize", ["a1", "", "sc"], ["r1"], name="up", mode=mode,
                         coordinate_transformation_mode=ctm),
             h.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2", pads=[1, 1, 1, 1])]
    consts = {"one": 1.0, "half": 0.5, "k": 0.7978845608028654, "c": 0.044715}
    inits += [nh.from_array(np.array(v, np.float32), n) for n, v in consts.items()]
    if tail == "erfc":
        nodes.append(h.make_node("Erfc", ["c2"], ["y"], name="act2"))
    elif tail == "erf":
        nodes += [h.make_node("Erf", ["c2"], ["e"], name="act2/Erf"),
                  h.make_node("Sub", ["one", "e"], ["y"], name="act2")]
    elif tail == "tfl":
        nodes.append(h.make_node("TFL_GELU", ["c2"], ["y"], name="act2", approximate=1))
    else:  # 0.5 x (1 + tanh(k (x + c x^3)))
        nodes += [h.make_node("Mul", ["c2", "c2"], ["x2"], name="g1"),
                  h.make_node("Mul", ["x2", "c2"], ["x3"], name="g2"),
                  h.make_node("Mul", ["x3", "c"], ["cx3"], name="g3"),
                  h.make_node("Add", ["c2", "cx3"], ["s"], name="g4"),
                  h.make_node("Mul", ["s", "k"], ["ks"], name="g5"),
                  h.make_node("Tanh", ["ks"], ["th"], name="g6"),
                  h.make_node("Add", ["th", "one"], ["tp"], name="g7"),
                  h.make_node("Mul", ["c2", "tp"], ["xt"], name="g8"),
                  h.make_node("Mul", ["xt", "half"], ["y"], name="act2")]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", 1, [1, 3, 8, 8])],
                     [h.make_tensor_value_info("y", 1, [1, 4, 16, 16])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.producer_name = "test"
    onnx.save(m, str(path))
    return str(path)


def run(tmp_path, **kw):
    src = conv_block(tmp_path / "src.onnx")
    tgt = conv_block(tmp_path / "tgt.onnx", **kw)
    out = tmp_path / "repaired.onnx"
    return check_paths(src, tgt, PipelineOptions(OPTS, repair=True, output=str(out))), out


@pytest.mark.parametrize("change,attribute,value", [
    ({"alpha": 0.01}, "alpha", 0.1),
    ({"ctm": "asymmetric"}, "coordinate_transformation_mode", "half_pixel"),
    ({"mode": "nearest"}, "mode", "linear"),
])
def test_changed_attribute_found_by_replay_and_repaired(tmp_path, change, attribute, value):
    r, out = run(tmp_path, **change)
    (f,) = [f for f in r.findings if f.rule == "CL305"]
    layer = "act1" if attribute == "alpha" else "up"
    assert f.layer == layer and f.stage == "hyperparameters"
    (a, v), = f.evidence["changes"]
    assert a == attribute and (v == value if isinstance(value, str) else abs(v - value) < 1e-6)
    assert f.evidence["replay"]["verdict"] == "conversion"
    assert f.repair.kind == "patch-attributes" and f.repair.verified and out.exists()
    assert r.extra["localization"]["culprit"] == {"rule": "CL305", "stage": "hyperparameters",
                                                  "layer": layer}


def test_clean_twin_raises_nothing(tmp_path):
    r, out = run(tmp_path)
    assert r.verdict == "equivalent" and r.findings == () and not out.exists()


def test_replay_blames_the_runtime_only_when_the_reference_reproduces_the_source():
    from convlint.analyzers.localize.replay import judge

    x = np.random.default_rng(0).normal(size=(2, 8))
    assert judge(x, x, x + 1.0, 1e-3).verdict == "runtime"
    assert judge(x, x + 1.0, x + 1.0, 1e-3).verdict == "conversion"
    assert judge(x, x, x, 1e-3).verdict == "inherited"


def test_crash_is_localized_to_the_source_layer_and_repaired(tmp_path):
    src = conv_block(tmp_path / "src.onnx")
    tgt = conv_block(tmp_path / "tgt.onnx", erfc=True)
    out = tmp_path / "repaired.onnx"
    r = check_paths(src, tgt, PipelineOptions(OPTS, repair=True, output=str(out)))
    assert r.verdict == "crash"
    (f,) = [f for f in r.findings if f.rule == "CL402"]
    assert f.stage == "conversion-tool" and f.layer == "act2"
    assert f.location.target_node == "act2" and "Erfc" in f.evidence["runtime_message"]
    assert f.repair.kind == "patch-graph" and f.repair.verified
    assert r.extra["localization"]["culprit"]["rule"] == "CL402"
    # the repaired file is the clean twin's equal
    again = check_paths(src, str(out), PipelineOptions(OPTS))
    assert again.verdict == "equivalent" and again.findings == ()


def test_a_pass_through_tflite_gelu_is_replaced_by_its_onnx_form(tmp_path):
    src = conv_block(tmp_path / "src.onnx", tail="gelu_tanh")
    tgt = conv_block(tmp_path / "tgt.onnx", tail="tfl")
    out = tmp_path / "repaired.onnx"
    r = check_paths(src, tgt, PipelineOptions(OPTS, repair=True, output=str(out)))
    (f,) = [f for f in r.findings if f.rule == "CL402"]
    assert f.layer == "act2" and f.repair.verified and "TFL_GELU" in f.repair.description
    # its clean twin
    assert check_paths(src, conv_block(tmp_path / "twin.onnx", tail="gelu_tanh"),
                       PipelineOptions(OPTS)).findings == ()


def test_crash_without_a_named_node_is_found_by_bisection(tmp_path):
    from convlint.analyzers.crash import failing_nodes

    m = onnx.load(conv_block(tmp_path / "t.onnx", erfc=True))

    def loads(model) -> bool:
        return not any(n.op_type == "Erfc" for n in model.graph.node)

    (n,) = failing_nodes(m, None, loads)
    assert n.name == "act2" and n.op_type == "Erfc"
    assert failing_nodes(onnx.load(conv_block(tmp_path / "c.onnx")), None, lambda m: True) == []


def test_another_checkpoint_is_not_the_same_model(tmp_path):
    src = conv_block(tmp_path / "src.onnx")
    other = conv_block(tmp_path / "other.onnx", seed=7)
    r = check_paths(src, other, PipelineOptions(OPTS))
    rules = [f.rule for f in r.findings]
    assert "CL102" in rules and "CL110" not in rules and "CL204" not in rules


def _keras_tflite(tmp_path, name, build):
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = build(keras)
    src = tmp_path / f"{name}.keras"
    model.save(src)
    tgt = tmp_path / f"{name}.tflite"
    tgt.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return str(src), str(tgt)


def _dense(rank7: bool):
    def build(keras):
        shape = (2, 2, 2, 2, 2, 3) if rank7 else (3,)
        inp = keras.Input(shape, batch_size=1, name="x")
        h = keras.layers.Dense(4, name="fc")(inp)
        h = keras.layers.Activation("tanh", name="act")(h)
        return keras.Model(inp, keras.layers.Flatten(name="flatten")(h))
    return build


@pytest.mark.slow
@pytest.mark.parametrize("rank7", [True, False])
def test_a_delegate_that_refuses_a_node_is_a_runtime_fault(tmp_path, rank7):
    # XNNPACK fails to prepare a rank-7 FULLY_CONNECTED that TFLite's builtin kernels run
    # (google/XNNPACK#11036); the rank-2 twin runs everywhere
    src, tgt = _keras_tflite(tmp_path, "dense", _dense(rank7))
    r = check_paths(src, tgt, PipelineOptions(OPTS))
    if not rank7:
        assert r.verdict == "equivalent" and r.findings == ()
        return
    assert r.verdict == "crash" and r.metrics["max_abs"] < 1e-5  # builtin kernels: exact
    (f,) = [f for f in r.findings if f.severity == "error"]
    assert f.rule == "CL015" and f.stage == "runtime" and f.layer == "fc"
    assert r.extra["localization"]["culprit"] == {
        "rule": "CL015",
        "stage": "runtime",
        "layer": "fc",
    }


def _flip(axes):
    def build(keras):
        inp = keras.Input((8, 8, 4), batch_size=1, name="x")
        h = keras.layers.Conv2D(6, 3, padding="same", name="conv")(inp)
        # a saved lambda keeps no closure: the axes are written into its code
        fn = eval(f"lambda t: __import__('keras').ops.flip(t, axis={axes!r})")  # noqa: S307
        h = keras.layers.Lambda(fn, output_shape=(8, 8, 6), name="flip")(h)
        return keras.Model(inp, keras.layers.Dense(5, name="head")(keras.layers.Flatten()(h)))
    return build


@pytest.mark.slow
@pytest.mark.parametrize("axes", [(1, 3), (1,)])
def test_a_tflite_node_the_kernels_refuse_is_traced_to_its_source_layer(tmp_path, axes):
    # REVERSE_V2 over non-adjacent axes fails to invoke (tensorflow/tensorflow#80831)
    src, tgt = _keras_tflite(tmp_path, "flip", _flip(axes))
    r = check_paths(src, tgt, PipelineOptions(OPTS, unsafe_load=True))
    if axes == (1,):
        assert r.verdict == "equivalent" and r.findings == ()
        return
    assert r.verdict == "crash"
    (f,) = [f for f in r.findings if f.rule == "CL402"]
    assert f.layer == "flip" and f.stage == "conversion-tool" and "REVERSE_V2" in f.message


def test_fused_layers_are_shown_where_they_are_compared():
    from convlint.analyzers.localize.align import ActivationMatch
    from convlint.analyzers.localize.graph import stage
    from convlint.analyzers.models.base import LayerInfo
    from convlint.analyzers.report.html import layer_groups

    layers = [LayerInfo("conv", "Conv2D", inputs=["x"], outputs=["conv"]),
              LayerInfo("relu", "ReLU", inputs=["conv"], outputs=["relu"]),
              LayerInfo("head", "Dense", inputs=["relu"], outputs=["head"])]
    acts = [ActivationMatch("conv", "t_relu", 0.4), ActivationMatch("relu", "t_relu", 1e-7),
            ActivationMatch("head", "t_head", 1e-7)]
    _, ev = stage(layers, [], acts, [], 1e-4)
    rows = {r["layer"]: r for r in ev["layer_errors"]}
    assert rows["conv"]["fused_into"] == "relu" and rows["conv"]["target"] == "t_relu"
    assert "fused_into" not in rows["relu"]
    groups = layer_groups(ev["layer_errors"])
    assert [g["layer"] for g in groups] == ["relu", "head"] and groups[0]["fused"] == ["conv"]


def int_bucket(path, *, floor: bool):
    """y = (round(10 x) as int32) // 3, as float: floored through float ops, or truncated by an
    integer Div (what tf2onnx writes for TF's integer FloorDiv, tensorflow-onnx#2174)."""
    ten = nh.from_array(np.array(10.0, np.float32), "ten")
    three_i = nh.from_array(np.array(3, np.int32), "three_i")
    three_f = nh.from_array(np.array(3.0, np.float32), "three_f")
    nodes = [h.make_node("Mul", ["x", "ten"], ["m"], name="scale"),
             h.make_node("Round", ["m"], ["r"], name="round"),
             h.make_node("Cast", ["r"], ["i"], name="to_int", to=onnx.TensorProto.INT32)]
    if floor:
        nodes += [h.make_node("Cast", ["i"], ["f"], name="to_float", to=onnx.TensorProto.FLOAT),
                  h.make_node("Div", ["f", "three_f"], ["d"], name="bucket_div"),
                  h.make_node("Floor", ["d"], ["y"], name="bucket")]
    else:
        nodes += [h.make_node("Div", ["i", "three_i"], ["d"], name="bucket_div"),
                  h.make_node("Cast", ["d"], ["y"], name="bucket", to=onnx.TensorProto.FLOAT)]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info("x", 1, [1, 16])],
                     [h.make_tensor_value_info("y", 1, [1, 16])], [ten, three_i, three_f])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))
    return str(path)


def test_a_truncating_integer_division_is_found_and_made_to_floor(tmp_path):
    src = int_bucket(tmp_path / "src.onnx", floor=True)
    out = tmp_path / "repaired.onnx"
    r = check_paths(src, int_bucket(tmp_path / "tgt.onnx", floor=False),
                    PipelineOptions(OPTS, repair=True, output=str(out)))
    (f,) = [f for f in r.findings if f.rule == "CL121"]
    assert f.evidence["op"] == "floor-divide" and f.location.target_node == "bucket_div"
    assert f.repair.kind == "patch-graph" and f.repair.verified
    twin = check_paths(src, int_bucket(tmp_path / "twin.onnx", floor=True), PipelineOptions(OPTS))
    assert twin.verdict == "equivalent" and twin.findings == ()


@pytest.mark.slow
@pytest.mark.parametrize("dilation", [3, 1])
def test_a_crash_the_other_exporter_avoids_is_repaired_by_reconversion(tmp_path, dilation):
    # the TorchScript exporter writes padding="same" with a dilation as auto_pad=SAME_UPPER, which
    # onnxruntime's Conv refuses at run time; the dynamo exporter writes explicit pads
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.dil_conv = torch.nn.Conv2d(8, 8, 3, padding="same", dilation=dilation)

        def forward(self, x):
            return self.dil_conv(torch.relu(self.stem(x)))

    torch.manual_seed(0)
    model, x = Net().eval(), torch.randn(1, 3, 16, 16)
    src, tgt = tmp_path / "net.pt2", tmp_path / "net.onnx"
    torch.export.save(torch.export.export(model, (x,)), str(src))
    torch.onnx.export(model, (x,), str(tgt), dynamo=False, opset_version=17, input_names=["x"])
    out = tmp_path / "repaired.onnx"
    r = check_paths(str(src), str(tgt), PipelineOptions(OPTS, repair=True, output=str(out)))
    if dilation == 1:
        assert r.verdict == "equivalent" and r.findings == () and not out.exists()
        return
    assert r.verdict == "crash"
    (f,) = [f for f in r.findings if f.rule == "CL402"]
    assert f.layer == "dil_conv" and f.stage == "conversion-tool"
    (rc,) = [f for f in r.findings if f.rule == "CL403"]
    assert "dynamo=True" in rc.evidence["setting"] and rc.repair.kind == "rewrite-call"
    assert rc.repair.verified and out.exists()
