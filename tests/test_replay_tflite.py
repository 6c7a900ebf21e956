"""The layer replay on TFLite targets: the op cut out of the target and run by the TFLite
interpreter, and its ONNX translation run by ONNX's numpy reference (``models.tflite_replay``).
A Keras model converted by TFLiteConverter is the clean twin; the fault is an option of one op
changed in the converted flatbuffer (as a converter that misreads it would write it)."""

from __future__ import annotations

import numpy as np
import pytest

from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.pipeline import PipelineOptions, check_paths

OPTS = DiffOptions(num_inputs=4, use_tvm=False)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    import keras
    import tensorflow as tf

    d = tmp_path_factory.mktemp("tflite_replay")
    keras.utils.set_random_seed(0)
    i = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="conv1")(i)
    x = keras.layers.LeakyReLU(negative_slope=0.2, name="leaky")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    x = keras.layers.UpSampling2D(2, interpolation="bilinear", name="up")(x)
    x = keras.layers.Conv2D(4, 1, name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dense(5, activation="softmax", name="fc")(x)
    m = keras.Model(i, x)
    m.save(d / "src.keras")
    (d / "clean.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    return d


def _with_option(src, dst, field: str, value):
    from convlint.analyzers.repair import tflite_graph as G

    m = G.load(str(src))
    for op in m.subgraphs[0].operators:
        if hasattr(op.builtinOptions, field):
            setattr(op.builtinOptions, field, value)
    dst.write_bytes(G.dump(m))
    return dst


def test_reference_agrees_with_the_interpreter_op_by_op(pair):
    """The translation means what TFLite's kernels compute, on every op of a faithful model."""
    from convlint.analyzers.models import tflite_replay as T
    from convlint.analyzers.models.tflite_runner import TFLiteRunner

    r = TFLiteRunner(pair / "clean.tflite").load()
    (s,) = r.input_specs()
    x = {s.name: np.random.default_rng(0).standard_normal([d or 1 for d in s.shape])
         .astype(np.float32)}
    acts = {**r.intermediates(x), **x}
    done = 0
    for layer in r.layers():
        feeds = {i: acts[i] for i in layer.inputs if i in acts and i not in layer.weights}
        sub = T.subgraph(r.buf, [layer.name], feeds, layer.outputs[:1])
        ref, rt = T.run_reference(sub, feeds)[0], T.run_runtime(sub, feeds)[0]
        assert ref.shape == rt.shape and np.allclose(ref, rt, rtol=1e-4, atol=1e-5), layer.op_type
        done += 1
    assert done >= 8


def test_clean_twin_raises_nothing(pair, tmp_path):
    r = check_paths(str(pair / "src.keras"), str(pair / "clean.tflite"),
                    PipelineOptions(OPTS, repair=True, output=str(tmp_path / "r.tflite")))
    assert r.verdict == "equivalent" and not [f for f in r.findings if f.severity == "error"]


def test_a_misread_option_is_found_by_replay_and_repaired(pair, tmp_path):
    tgt = _with_option(pair / "clean.tflite", tmp_path / "fault.tflite", "alpha", 0.1)
    out = tmp_path / "repaired.tflite"
    r = check_paths(str(pair / "src.keras"), str(tgt), PipelineOptions(OPTS, repair=True,
                                                                      output=str(out)))
    replay = r.extra["localization"]["replay"]
    assert replay["verdict"] == "conversion" and replay["reference_vs_runtime"] < 1e-5
    (f,) = [f for f in r.findings if f.rule == "CL305"]
    assert f.layer == "leaky" and f.stage == "hyperparameters"
    (a, v), = f.evidence["changes"]
    assert a == "Alpha" and abs(v - 0.2) < 1e-6
    assert f.repair is not None and f.repair.verified and out.exists()
    # the structural guess (an extra activation) is refuted by the replay, not the culprit
    assert not [g for g in r.findings if g.rule == "CL120" and g.severity == "error"]


def test_a_misread_resize_flag_is_found_by_replay(pair, tmp_path):
    tgt = _with_option(pair / "clean.tflite", tmp_path / "fault.tflite", "halfPixelCenters",
                       False)
    r = check_paths(str(pair / "src.keras"), str(tgt), PipelineOptions(OPTS, repair=True,
                                                                      output=str(tmp_path / "o")))
    (f,) = [f for f in r.findings if f.rule == "CL305"]
    assert f.layer == "up" and [a for a, _ in f.evidence["changes"]] == ["HalfPixelCenters"]
    assert f.repair is not None and f.repair.verified
