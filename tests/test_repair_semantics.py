"""CL305 from the hyperparameter stage's comparison of described semantics, repaired in the
target's format: the faults of real converters (an opset-11 Softmax normalized over one axis,
Mod(fmod=1) as FLOOR_MOD, scatter_reduce "mean" as a plain ScatterElements) rebuilt here with
tf.lite, onnx.helper and torch, each beside a faithful twin that must stay clean."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.pipeline import PipelineOptions, check_paths

OPTS = DiffOptions(num_inputs=4)
RNG = np.random.default_rng(0)
W1 = (RNG.standard_normal((24, 16)) * 0.5).astype(np.float32)
B1 = (RNG.standard_normal(24) * 0.1).astype(np.float32)
W2 = (RNG.standard_normal((8, 24)) * 0.5).astype(np.float32)
B2 = (RNG.standard_normal(8) * 0.1).astype(np.float32)


def _onnx_source(path: Path, middle: list, opset: int, inits: tuple = ()) -> str:
    """x [1, 16] -> Gemm "proj" -> ``middle`` (reads "h", writes "m") -> Gemm "head" -> y."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="proj", transB=1), *middle,
             helper.make_node("Gemm", ["m", "w2", "b2"], ["y"], name="head", transB=1)]
    arrays = {"w1": W1, "b1": B1, "w2": W2, "b2": B2, **dict(inits)}
    g = helper.make_graph(nodes, "net",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
                          [numpy_helper.from_array(np.asarray(v), k) for k, v in arrays.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return str(path)


def _tflite(path: Path, middle) -> str:
    """The same network written by tf.lite, with ``middle`` (a TF function of h) in between."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32, name="x")])
    def f(x):
        h = tf.matmul(x, W1.T) + B1
        return tf.matmul(middle(h), W2.T) + B2

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    path.write_bytes(conv.convert())
    return str(path)


def _check(src: str, tgt: str):
    before = Path(tgt).read_bytes()
    r = check_paths(src, tgt, PipelineOptions(OPTS, repair=True))
    assert Path(tgt).read_bytes() == before  # the input target is never touched
    return r


def _assert_repaired(src: str, r, layer: str, op: str, changes: list):
    (f,) = [x for x in r.findings if x.rule == "CL305"]
    assert (f.stage, f.layer, f.evidence["op"], f.evidence["changes"]) == (
        "hyperparameters", layer, op, changes)
    assert r.extra["localization"]["culprit"] == {"rule": "CL305", "stage": "hyperparameters",
                                                   "layer": layer}
    assert f.repair is not None and f.repair.verified and f.repair.kind == "patch-graph"
    out = f.repair.output
    assert out and Path(out).exists()
    again = check_paths(src, out, PipelineOptions(OPTS, localize=False))
    assert again.verdict == "equivalent"


def _assert_clean(r, folder: Path, files: int):
    assert r.verdict == "equivalent", r.metrics
    assert not [f for f in r.findings if f.severity == "error"]
    assert len(list(folder.iterdir())) == files  # no repaired copy written


def _softmax_source(tmp_path):
    from onnx import helper

    shapes = (("heads", np.array([1, 4, 6], np.int64)), ("flat", np.array([1, 24], np.int64)))
    mid = [helper.make_node("Reshape", ["h", "heads"], ["r"], name="to_heads"),
           helper.make_node("Softmax", ["r"], ["s"], name="attn_softmax", axis=1),
           helper.make_node("Reshape", ["s", "flat"], ["m"], name="flatten")]
    return _onnx_source(tmp_path / "softmax.onnx", mid, 11, shapes)


def test_opset11_softmax_over_one_axis_is_cl305_and_rewritten_in_tflite(tmp_path):
    import tensorflow as tf

    src = _softmax_source(tmp_path)
    # onnx2tf's fault: softmax over axis 1 alone (TFLite: transposes around a last-axis SOFTMAX)
    tgt = _tflite(tmp_path / "softmax.tflite",
                  lambda h: tf.reshape(tf.nn.softmax(tf.reshape(h, [1, 4, 6]), axis=1), [1, 24]))
    _assert_repaired(src, _check(src, tgt), "attn_softmax", "SOFTMAX", [["normalized_axes", 2]])
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    twin = _tflite(clean_dir / "softmax.tflite", lambda h: tf.nn.softmax(h))  # over all 24
    _assert_clean(_check(src, twin), clean_dir, 1)


def test_fmod_converted_to_floor_mod_is_rewritten_in_tflite(tmp_path):
    import tensorflow as tf
    from onnx import helper

    mid = [helper.make_node("Mod", ["h", "period"], ["m"], name="wrap", fmod=1)]
    src = _onnx_source(tmp_path / "fmod.onnx", mid, 13, (("period", np.array(0.5, np.float32)),))
    tgt = _tflite(tmp_path / "fmod.tflite", lambda h: tf.math.floormod(h, 0.5))
    _assert_repaired(src, _check(src, tgt), "wrap", "FLOOR_MOD", [["fmod", 1]])
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    twin = _tflite(clean_dir / "fmod.tflite",
                   lambda h: tf.math.sign(h) * tf.math.floormod(tf.abs(h), 0.5))
    _assert_clean(_check(src, twin), clean_dir, 1)


def test_the_fmod_rewrite_is_exact_for_integers(tmp_path):
    import tensorflow as tf

    from convlint.analyzers.repair.graph import GraphEdit
    from convlint.analyzers.repair.plan import Plan, Step
    from convlint.analyzers.repair.tflite_patch import patch

    @tf.function(input_signature=[tf.TensorSpec([64], tf.int32, name="a"),
                                  tf.TensorSpec([64], tf.int32, name="b")])
    def f(a, b):
        return tf.math.floormod(a, b)

    path = tmp_path / "imod.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_concrete_functions(
        [f.get_concrete_function()], f).convert())
    it = tf.lite.Interpreter(str(path))
    (mod,) = [o for o in it._get_ops_details() if o["op_name"] == "FLOOR_MOD"]
    node = next(t["name"] for t in it.get_tensor_details() if t["index"] == mod["outputs"][0])
    e = GraphEdit("semantics", [node], changes=[("fmod", 1)])
    plan = Plan({0: Step("patch-graph", node, "fmod", graph_edits=[e])})
    out = str(tmp_path / "imod.repaired.tflite")
    assert patch(str(path), plan, out) == [node]
    a = np.random.default_rng(1).integers(-50, 50, 64).astype(np.int32)
    sign = np.where(np.arange(64) % 2, 1, -1)
    b = np.random.default_rng(2).integers(1, 9, 64).astype(np.int32) * sign
    it = tf.lite.Interpreter(out)
    it.allocate_tensors()
    ins = sorted(it.get_input_details(), key=lambda d: d["name"])
    it.set_tensor(ins[0]["index"], a)
    it.set_tensor(ins[1]["index"], b.astype(np.int32))
    it.invoke()
    np.testing.assert_array_equal(it.get_tensor(it.get_output_details()[0]["index"]), np.fmod(a, b))


INDEX = [0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 3, 3, 0, 1, 2, 3]


def _torch_pool(tmp_path, reduce: str) -> str:
    import torch

    class Pool(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("index", torch.tensor(INDEX))

        def forward(self, x):
            idx = self.index.expand(x.shape[0], -1)
            return torch.zeros(x.shape[0], 4).scatter_reduce(1, idx, x, reduce=reduce)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.pool, self.head = torch.nn.Linear(8, 16), Pool(), torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.head(self.pool(torch.relu(self.fc(x))))

    torch.manual_seed(0)
    net = Net().eval()
    path = tmp_path / f"{reduce}.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(4, 8),)), str(path))
    return str(path)


def _onnx_pool(path: Path, source: str, reduction: str) -> str:
    """The dynamo exporter's graph of the torch network, its ScatterElements' ``reduction``."""
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    sd = torch.export.load(source).state_dict
    arr = {k: v.detach().numpy() for k, v in sd.items()}
    arr.update(zeros=np.zeros((4, 4), np.float32), idx=np.tile(np.array(INDEX, np.int64), (4, 1)))
    nodes = [helper.make_node("Gemm", ["input", "fc.weight", "fc.bias"], ["linear"],
                              name="node_linear", transB=1),
             helper.make_node("Relu", ["linear"], ["relu"], name="node_relu"),
             helper.make_node("ScatterElements", ["zeros", "idx", "relu"], ["scatter_reduce"],
                              name="node_scatter_reduce", axis=1, reduction=reduction),
             helper.make_node("Gemm", ["scatter_reduce", "head.weight", "head.bias"], ["output"],
                              name="node_linear_1", transB=1)]
    g = helper.make_graph(nodes, "net",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, [4, 8])],
                          [helper.make_tensor_value_info("output", TensorProto.FLOAT, [4, 3])],
                          [numpy_helper.from_array(v, k) for k, v in arr.items()
                           if k != "pool.index"])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    m.ir_version = 8
    onnx.save(m, str(path))
    return str(path)


def test_scatter_mean_exported_as_plain_scatter_is_rewritten_in_onnx(tmp_path):
    src = _torch_pool(tmp_path, "mean")
    tgt = _onnx_pool(tmp_path / "mean.onnx", src, "none")
    _assert_repaired(src, _check(src, tgt), "pool", "ScatterElements",
                     [["reduction", "mean"], ["include_self", True]])
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    amax = _torch_pool(tmp_path, "amax")
    twin = _onnx_pool(clean_dir / "amax.onnx", amax, "max")
    _assert_clean(_check(amax, twin), clean_dir, 1)


@pytest.mark.parametrize("include_self", [True, False])
def test_the_scatter_mean_subgraph_is_torchs_mean(include_self):
    import onnx
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    from convlint.analyzers.repair.graph import GraphEdit, apply_onnx

    node = helper.make_node("ScatterElements", ["d", "i", "u"], ["y"], name="s", axis=1)
    vi = helper.make_tensor_value_info
    g = helper.make_graph([node], "g", [vi("d", TensorProto.FLOAT, [3, 5]),
                                        vi("i", TensorProto.INT64, [3, 4]),
                                        vi("u", TensorProto.FLOAT, [3, 4])],
                          [vi("y", TensorProto.FLOAT, [3, 5])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 18)])
    edit = GraphEdit("semantics", ["s"],
                     changes=[("reduction", "mean"), ("include_self", include_self)])
    assert apply_onnx(m, [edit]) == ["s"]
    onnx.checker.check_model(m)
    rng = np.random.default_rng(3)
    d = rng.standard_normal((3, 5)).astype(np.float32)
    i = rng.integers(0, 4, (3, 4))  # column 4 is never scattered to
    u = rng.standard_normal((3, 4)).astype(np.float32)
    (y,) = ort.InferenceSession(m.SerializeToString()).run(None, {"d": d, "i": i, "u": u})
    want = torch.from_numpy(d).scatter_reduce(1, torch.from_numpy(i), torch.from_numpy(u),
                                              "mean", include_self=include_self)
    np.testing.assert_allclose(y, want.numpy(), rtol=1e-6, atol=1e-6)


def _softplus(tmp_path, threshold: float):
    """A torch source whose Softplus has a linear branch (beta x > threshold) and its ONNX export
    by the TorchScript exporter, which drops the branch (torch's symbolic_opset9.softplus)."""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = torch.nn.Linear(16, 24)
            self.act = torch.nn.Softplus(beta=2.0, threshold=threshold)
            self.head = torch.nn.Linear(24, 8)

        def forward(self, x):
            return self.head(self.act(self.proj(x)))

    torch.manual_seed(0)
    net, x = Net().eval(), torch.randn(1, 16)
    src = tmp_path / f"softplus{threshold:g}.pt2"
    with torch.no_grad():
        torch.export.save(torch.export.export(net, (x,)), str(src))
        tgt = tmp_path / f"softplus{threshold:g}.onnx"
        torch.onnx.export(net, (x,), str(tgt), dynamo=False, opset_version=17)
    return str(src), str(tgt)


def test_softplus_threshold_dropped_by_the_exporter_is_rewritten_in_onnx(tmp_path):
    src, tgt = _softplus(tmp_path, 0.5)
    r = _check(src, tgt)
    (f,) = [x for x in r.findings if x.rule == "CL305"]
    assert (f.stage, f.layer, f.evidence["op"]) == ("hyperparameters", "act", "Softplus")
    assert f.evidence["changes"] == [["threshold", 0.5]]
    assert r.extra["localization"]["culprit"]["stage"] == "hyperparameters"
    assert f.repair is not None and f.repair.verified and f.repair.kind == "patch-graph"
    again = check_paths(src, f.repair.output, PipelineOptions(OPTS, localize=False))
    assert again.verdict == "equivalent"
    # the twin: torch's default threshold (20) is beyond every value here; the export is faithful
    clean_dir = tmp_path / "clean"
    clean_dir.mkdir()
    src, tgt = _softplus(clean_dir, 20.0)
    _assert_clean(_check(src, tgt), clean_dir, 2)
