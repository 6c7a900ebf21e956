"""Full-integer int8 targets: quantization noise is told from a quantization fault.

The pairs are built here from a small Keras CNN: a clean twin calibrated on the input range, an
outlier twin (one channel of conv2 scaled by 1000, conv3 reading it scaled back, so the float
model is sane but the per-tensor range is not) and a twin calibrated on 1% of the input range.
"""

from pathlib import Path

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


def _calibration(tmp_path) -> str:
    """The calibration data the clean and outlier twins were quantized with (``_int8``'s)."""
    rng = np.random.default_rng(1)
    path = tmp_path / "calibration.npy"
    np.save(path, rng.uniform(-1, 1, (32, 1, 16, 16, 3)).astype(np.float32).reshape(32, 16, 16, 3))
    return str(path)


def _repair(pair, tmp_path, calibration: bool):
    from dataclasses import replace

    out = str(tmp_path / "repaired.tflite")
    popts = replace(OPTS, repair=True, output=out,
                    calibration=_calibration(tmp_path) if calibration else None)
    return check_paths(*pair, popts), out


def test_outlier_layers_are_kept_in_float_and_the_repair_verified(pairs, tmp_path):
    import os

    r, out = _repair(pairs["outlier"], tmp_path, calibration=True)
    (fault,) = [f for f in r.findings if f.rule == "CL205"]
    rep = fault.repair
    assert rep.verified and rep.kind == "rewrite-call" and rep.output == out and os.path.exists(out)
    # recalibrating alone keeps the outlier range; conv2 and the conv3 that reads it go float
    kept = rep.metrics_after["keep_in_float"]
    assert any("conv2" in k for k in kept) and len(kept) <= 2
    assert rep.metrics_after["tried"][0]["keep_in_float"] == []
    assert rep.metrics_after["bytes_after"] > rep.metrics_after["bytes_before"]
    assert "stays quantized" in rep.description and "denylisted_nodes" in rep.description
    # the repaired file is a quantized model within int8 noise, checked again from scratch
    again = check_paths(pairs["outlier"][0], out, OPTS)
    assert again.verdict == "equivalent" and [f.rule for f in again.findings] == ["CL206"]
    assert not os.path.exists(pairs["outlier"][1] + ".repaired")  # the target untouched


def test_narrow_calibration_is_repaired_by_recalibrating(pairs, tmp_path):
    r, _ = _repair(pairs["narrow"], tmp_path, calibration=True)
    faults = [f for f in r.findings if f.rule == "CL205"]
    assert faults and all(f.repair.verified for f in faults)
    assert faults[0].repair.metrics_after["keep_in_float"] == []  # no layer left in float


def test_without_calibration_data_the_repair_says_what_to_pass(pairs, tmp_path):
    r, out = _repair(pairs["outlier"], tmp_path, calibration=False)
    (fault,) = [f for f in r.findings if f.rule == "CL205"]
    assert fault.repair.kind == "none" and "--calibration" in fault.repair.description
    assert not __import__("os").path.exists(out)


def test_well_quantized_twin_needs_no_repair(pairs, tmp_path):
    r, out = _repair(pairs["clean"], tmp_path, calibration=True)
    assert r.verdict == "equivalent" and not any(f.repair for f in r.findings)
    assert not __import__("os").path.exists(out)


def test_cli_repairs_with_calibration_and_refuses_a_missing_file(pairs, tmp_path):
    import json

    from conftest import run_cli

    out = tmp_path / "cli.repaired.tflite"
    p = run_cli("diff", *pairs["outlier"], "--no-tvm", "--num-inputs", "8", "--repair",
                "--output", str(out), "--calibration", _calibration(tmp_path), "--format", "json")
    assert p.returncode == 1, p.stderr  # the report is about the target given
    (fault,) = [f for f in json.loads(p.stdout)["findings"] if f["rule"] == "CL205"]
    assert fault["repair"]["verified"] and out.exists()
    bad = run_cli("diff", *pairs["outlier"], "--no-tvm", "--repair", "--calibration",
                  str(tmp_path / "missing.npy"), "--output", str(tmp_path / "x.tflite"))
    assert bad.returncode == 2 and "--calibration" in bad.stderr and "Traceback" not in bad.stderr


def _onnx_pair(d, outlier: bool) -> tuple:
    """A float ONNX CNN (torch-exported; conv2's channel 0 scaled by 1000 and read back scaled
    down in the outlier twin) and its QDQ quantization by onnxruntime, with the calibration data."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    torch.manual_seed(0)
    convs = [torch.nn.Conv2d(i, 8, 3, padding=1) for i in (3, 8, 8)]
    m = torch.nn.Sequential(convs[0], torch.nn.ReLU(), convs[1], torch.nn.ReLU(), convs[2],
                            torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                            torch.nn.Linear(8, 10)).eval()
    if outlier:
        with torch.no_grad():
            convs[1].weight[0] *= 1000
            convs[1].bias[0] *= 1000
            convs[2].weight[:, 0] /= 1000
    tag = "outlier" if outlier else "clean"
    src, tgt, cal = d / f"{tag}.onnx", d / f"{tag}.qdq.onnx", d / "onnx-calibration.npy"
    torch.onnx.export(m, (torch.zeros(1, 3, 16, 16),), str(src), input_names=["x"],
                      output_names=["y"], dynamo=False, opset_version=17)
    data = np.random.default_rng(1).uniform(-1, 1, (32, 3, 16, 16)).astype(np.float32)
    np.save(cal, data)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(data)

        def get_next(self):
            v = next(self.it, None)
            return None if v is None else {"x": v[None]}

    quantize_static(str(src), str(tgt), Reader(), quant_format=QuantFormat.QDQ)
    return str(src), str(tgt), str(cal)


@pytest.mark.parametrize("outlier", [True, False])
def test_qdq_onnx_outlier_is_kept_in_float_with_its_readers(tmp_path, outlier):
    from dataclasses import replace

    src, tgt, cal = _onnx_pair(tmp_path, outlier)
    out = tmp_path / "qdq.repaired.onnx"
    r = check_paths(src, tgt, replace(OPTS, repair=True, output=str(out), calibration=cal))
    faults = [f for f in r.findings if f.rule == "CL205"]
    if not outlier:  # the clean twin: within int8 noise, nothing to repair
        assert r.verdict == "equivalent" and not faults and not out.exists()
        return
    assert faults and faults[0].layer == "/2/Conv"
    rep = faults[0].repair
    assert rep.verified and out.exists(), rep.description
    # the conv and the nodes that read its output (through the ReLU) leave quantization
    assert rep.metrics_after["keep_in_float"][0] == "/2/Conv"
    assert "nodes_to_exclude" in rep.description


# --- trace: the calibration samples the script's converter drew, for the repair ---------------
_ORT_SCRIPT = '''import numpy as np
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

torch.manual_seed(0)
convs = [torch.nn.Conv2d(i, 8, 3, padding=1) for i in (3, 8, 8)]
m = torch.nn.Sequential(convs[0], torch.nn.ReLU(), convs[1], torch.nn.ReLU(), convs[2],
                        torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                        torch.nn.Linear(8, 10)).eval()
if OUTLIER:
    with torch.no_grad():
        convs[1].weight[0] *= 1000
        convs[1].bias[0] *= 1000
        convs[2].weight[:, 0] /= 1000
torch.onnx.export(m, (torch.zeros(1, 3, 16, 16),), "f.onnx", input_names=["x"],
                  output_names=["y"], dynamo=False, opset_version=17)
data = np.load("calib.npy")


class Reader(CalibrationDataReader):
    def __init__(self):
        self.it = iter(data)

    def get_next(self):
        v = next(self.it, None)
        return None if v is None else {"x": v[None]}


quantize_static("f.onnx", "f.qdq.onnx", Reader(), quant_format=QuantFormat.QDQ, per_channel=True)
'''


@pytest.mark.slow
@pytest.mark.parametrize("outlier", [True, False])
def test_trace_repairs_on_the_calibration_samples_the_script_drew(tmp_path, outlier):
    import json

    from conftest import run_cli

    script = tmp_path / "quantize.py"
    script.write_text(_ORT_SCRIPT.replace("OUTLIER", str(outlier)))
    data = np.random.default_rng(1).uniform(-1, 1, (32, 3, 16, 16)).astype(np.float32)
    np.save(tmp_path / "calib.npy", data)
    p = run_cli("trace", str(script), "--allow-exec", "--cwd", str(tmp_path), "--no-tvm",
                "--num-inputs", "8", "--repair", "--format", "json")
    assert p.returncode in (0, 1) and "WARNING" not in p.stderr, p.stderr
    r = json.loads(p.stdout)
    (q,) = [c for c in r["conversions"] if c["call"].endswith("quantize_static")]
    assert q["call_site"]["line"] == 29 and q["source"]["path"].endswith("source.onnx")
    cal = q["calibration"]
    assert cal["samples"] == 32 and cal["from"] == "CalibrationDataReader"
    with np.load(cal["path"]) as z:  # what the reader gave the converter, in order
        assert list(z) == ["x"] and np.array_equal(z["x"][:, 0], data)
    assert not (tmp_path / "f.qdq.onnx").exists()  # the script's outputs went to the cache
    faults = [f for f in q["findings"] if f["rule"] == "CL205"]
    if not outlier:
        assert q["verdict"] == "equivalent" and not faults
        return
    rep = faults[0]["repair"]
    assert rep["verified"] and "nodes_to_exclude" in rep["description"], rep
    assert rep["output"].startswith(str(Path(cal["path"]).parent))


def test_trace_records_a_representative_dataset_as_calibration(tmp_path):
    from convlint.analyzers.scripts.trace import TraceOptions, run_script

    script = tmp_path / "tfl.py"
    script.write_text('''import keras
import numpy as np
import tensorflow as tf

x = keras.Input((4, 4, 3), name="x")
model = keras.Model(x, keras.layers.Conv2D(2, 3, name="c")(x))
data = np.linspace(-1, 1, 12 * 48, dtype=np.float32).reshape(12, 1, 4, 4, 3)


def rep():
    for d in data:
        yield [d]


c = tf.lite.TFLiteConverter.from_keras_model(model)
c.optimizations = [tf.lite.Optimize.DEFAULT]
c.representative_dataset = tf.lite.RepresentativeDataset(rep)
open("m.tflite", "wb").write(c.convert())
assert isinstance(c.representative_dataset, tf.lite.RepresentativeDataset)
''')
    run = run_script(str(script), TraceOptions(OPTS, allow_exec=True, cwd=str(tmp_path)),
                     str(tmp_path / "out"))
    assert run.status == 0, run.stderr
    (rec,) = run.records
    assert rec["calibration"]["samples"] == 12 and rec["calibration"]["from"] == \
        "representative_dataset"
    with np.load(rec["calibration"]["path"]) as z:
        assert list(z) == ["input_0"] and z["input_0"].shape == (12, 1, 4, 4, 3)
        assert np.array_equal(z["input_0"][:, 0], np.linspace(-1, 1, 12 * 48).reshape(
            12, 4, 4, 3).astype(np.float32))
