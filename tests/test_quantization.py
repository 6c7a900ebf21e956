"""Full-integer int8 targets: quantization noise is told from a quantization fault.

The pairs are built here from a small Keras CNN: a clean twin calibrated on the input range, an
outlier twin (one channel of conv2 scaled by 1000, conv3 reading it scaled back, so the float
model is sane but the per-tensor range is not) and a twin calibrated on 1% of the input range.
"""

import numpy as np
import pytest

from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.localize import quantization as Q
from convlint.analyzers.models.base import QuantParams
from convlint.analyzers.pipeline import PipelineOptions, check_paths

OPTS = PipelineOptions(DiffOptions(num_inputs=8, use_tvm=False))


def _model(outlier: bool):
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((16, 16, 3), name="x")
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(h)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv3")(h)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    m = keras.Model(x, keras.layers.Dense(10, name="logits")(h))
    if outlier:
        k, b = m.get_layer("conv2").get_weights()
        k[..., 0] *= 1000
        b[0] *= 1000
        m.get_layer("conv2").set_weights([k, b])
        k3, b3 = m.get_layer("conv3").get_weights()
        k3[:, :, 0, :] /= 1000
        m.get_layer("conv3").set_weights([k3, b3])
    return m


def _int8(model, half_range: float, path) -> str:
    import tensorflow as tf

    def representative():
        rng = np.random.default_rng(1)
        for _ in range(32):
            yield [rng.uniform(-half_range, half_range, (1, 16, 16, 3)).astype(np.float32)]

    c = tf.lite.TFLiteConverter.from_keras_model(model)
    c.optimizations = [tf.lite.Optimize.DEFAULT]
    c.representative_dataset = representative
    c.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    path.write_bytes(c.convert())
    return str(path)


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    d = tmp_path_factory.mktemp("int8")
    clean, outlier = _model(False), _model(True)
    clean.save(d / "clean.keras")
    outlier.save(d / "outlier.keras")
    return {"clean": (str(d / "clean.keras"), _int8(clean, 1.0, d / "clean.tflite")),
            "narrow": (str(d / "clean.keras"), _int8(clean, 0.01, d / "narrow.tflite")),
            "outlier": (str(d / "outlier.keras"), _int8(outlier, 1.0, d / "outlier.tflite"))}


def errors(report) -> list:
    return [f for f in report.findings if f.severity == "error"]


def test_well_quantized_model_is_within_int8_noise(pairs):
    r = check_paths(*pairs["clean"], OPTS)
    assert r.verdict == "equivalent" and not errors(r), [f.message for f in errors(r)]
    (noise,) = [f for f in r.findings if f.rule == "CL206"]
    assert noise.severity == "info" and "budget" in noise.message
    table = r.extra["localization"]["quantization"]["layers"]
    assert {q["layer"] for q in table} >= {"conv1", "conv2", "conv3", "logits"}
    # every layer near the ideal of uniform rounding
    assert all(q["rmse_steps"] < 1.0 for q in table)


def test_outlier_activation_range_is_named(pairs):
    r = check_paths(*pairs["outlier"], OPTS)
    assert r.verdict == "divergent"
    (fault,) = [f for f in r.findings if f.rule == "CL205"]
    assert fault.layer == "conv2" and "outlier" in fault.message
    assert fault.evidence["added"] > 0.5 and fault.evidence["step"] > 1.0
    assert r.extra["localization"]["culprit"]["rule"] == "CL205"
    # the int8 weights are the quantization asked for, not the fault
    assert not [f for f in errors(r) if f.rule in ("CL201", "CL110")]


def test_calibration_on_a_sliver_of_the_input_range_is_named(pairs):
    r = check_paths(*pairs["narrow"], OPTS)
    assert r.verdict == "divergent"
    faults = [f for f in r.findings if f.rule == "CL205"]
    assert faults and faults[0].layer == "conv1"
    assert "clipped" in faults[0].message and "x in [" in faults[0].message


def test_calibrated_ranges_judge_inside_the_input_quantization():
    q = {"in": QuantParams(0.5 / 127, 0, -128, 127), "tiny": QuantParams(1e-4, 0, -128, 127)}
    ranges, narrow = Q.calibrated_ranges({"a": ("in", None), "b": ("tiny", None)}, q)
    assert ranges == {"a": pytest.approx((-128 * 0.5 / 127, 0.5))} and list(narrow) == ["b"]
