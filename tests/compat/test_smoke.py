"""The smoke path, run on the newest supported frameworks (by `make test`, in .venv) and on the
oldest (by `make test-compat`, in .venv-compat, with tests/compat/oldest.txt as constraints).

Its models are made here, by the frameworks of the environment under test, as a user's are: a
.keras or .pt2 file saved by a newer framework release is not readable by an older one. The path:
a diff of each format pair (a clean pair and a faulty twin with a verified repair), a trace of a
conversion script, a train-check of a training program, and a language-server session.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import pytest

from conftest import ROOT, run_cli
from jsonrpc_client import one_session

pytestmark = [pytest.mark.slow, pytest.mark.compat]


def _generate_module():
    spec = importlib.util.spec_from_file_location(
        "convlint_fixture_generate", ROOT / "fixtures" / "generate.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """One Keras and one torch model with their conversions, made by this environment."""
    import tensorflow as tf
    import tf2onnx
    import torch

    gen = _generate_module()
    out = tmp_path_factory.mktemp("compat-models")
    km = gen.keras_model("mobilenet")
    km.save(out / "m.keras")
    conv = tf.lite.TFLiteConverter.from_keras_model(km)
    (out / "m.tflite").write_bytes(conv.convert())
    conv = tf.lite.TFLiteConverter.from_keras_model(km)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    (out / "m.dynint8.tflite").write_bytes(conv.convert())
    sig = (tf.TensorSpec((None, gen.HW, gen.HW, 3), tf.float32, name="image"),)
    tf2onnx.convert.from_keras(
        km, input_signature=sig, opset=17, output_path=str(out / "m.tf2onnx.onnx")
    )
    tm = gen.torch_model("resnet")
    x = torch.randn(1, 3, gen.HW, gen.HW)
    torch.export.save(torch.export.export(tm, (x,)), out / "r.pt2")
    torch.jit.save(torch.jit.trace(tm, (x,)), out / "r.ts.pt")
    torch.onnx.export(tm, (x,), out / "r.torch.onnx", dynamo=False, opset_version=17,
                      input_names=["input"], output_names=["logits"])
    gen.tamper_onnx(out / "r.torch.onnx", out / "r.torch.tampered.onnx")
    return out


PAIRS = [  # source, target, verdict, a rule the report must hold
    ("m.keras", "m.tflite", "equivalent", None),
    ("m.keras", "m.tf2onnx.onnx", "equivalent", None),
    ("m.tflite", "m.tf2onnx.onnx", "equivalent", None),
    ("r.pt2", "r.torch.onnx", "equivalent", None),
    ("r.ts.pt", "r.torch.onnx", "equivalent", "CL006"),
    ("m.keras", "m.dynint8.tflite", "divergent", "CL201"),
    ("r.pt2", "r.torch.tampered.onnx", "divergent", "CL204"),
]


def _diff(made, src, tgt, *extra):
    p = run_cli(
        "diff", str(made / src), str(made / tgt), "--format", "json", "--num-inputs", "4", *extra
    )
    assert "Traceback" not in p.stderr, p.stderr[-3000:]
    return p, json.loads(p.stdout)


@pytest.mark.parametrize("src,tgt,verdict,rule", PAIRS, ids=[f"{s}->{t}" for s, t, *_ in PAIRS])
def test_diff_each_format_pair(made, src, tgt, verdict, rule):
    p, rep = _diff(made, src, tgt)
    assert rep["verdict"] == verdict, [f["message"] for f in rep["findings"]]
    rules = {f["rule"] for f in rep["findings"]}
    assert rule is None or rule in rules, rules
    # TVM itself loads on every supported version (a model TVM refuses is another CL011)
    assert not [
        f for f in rep["findings"] if f["rule"] == "CL011" and f["evidence"].get("model") is None
    ]
    if verdict == "equivalent":
        assert p.returncode == 0 and not [f for f in rep["findings"] if f["severity"] != "info"]
    else:  # weight faults: no hyperparameter is blamed (the describers read every version's graph)
        assert p.returncode == 1 and not [r for r in rules if r.startswith("CL3")], rules


@pytest.mark.parametrize(
    "src,tgt", [("m.keras", "m.dynint8.tflite"), ("r.pt2", "r.torch.tampered.onnx")]
)
def test_repair_is_verified(made, tmp_path, src, tgt):
    out = tmp_path / ("repaired" + "".join(made.joinpath(tgt).suffixes[-1:]))
    p, rep = _diff(made, src, tgt, "--repair", "--output", str(out), "--no-tvm")
    assert p.returncode == 1 and out.exists()
    repairs = [f["repair"] for f in rep["findings"] if (f.get("repair") or {}).get("output")]
    assert repairs and all(r["verified"] for r in repairs), repairs
    p, rep = _diff(made, src, str(out), "--no-tvm")  # the repaired file, checked again
    assert p.returncode == 0 and rep["verdict"] == "equivalent"


@pytest.mark.parametrize(
    "name,rule", [("tflite_optimize.py", "CL411"), ("torch_training.py", "CL430")]
)
def test_trace_a_conversion_script_and_its_clean_twin(tmp_path, name, rule):
    for script, expect in ((name, 1), (name.replace(".py", ".clean.py"), 0)):
        work = tmp_path / script.replace(".", "_")
        work.mkdir()
        shutil.copy(ROOT / "fixtures" / "scripts" / script, work / script)
        p = run_cli(
            "trace",
            str(work / script),
            "--allow-exec",
            "--cwd",
            str(work),
            "--no-tvm",
            "--format",
            "json",
        )
        doc = json.loads(p.stdout)
        assert p.returncode == expect, (doc["verdict"], [f["message"] for f in doc["findings"]])
        assert len(doc["conversions"]) == 1
        if expect:
            assert rule in {f["rule"] for f in doc["findings"]}


@pytest.mark.parametrize("name", ["t04_lr_too_high", "k01_relu_output"])
def test_train_check_a_faulty_program_and_its_fixed_twin(tmp_path, name):
    sys.path.insert(0, str(ROOT / "bench" / "training"))
    import programs

    case = next(c for c in programs.cases() if c.name == name)
    bad, good = programs.sources(case)
    for text, expect in ((bad, 1), (good, 0)):
        path = tmp_path / f"{expect}.py"
        path.write_text(text)
        p = run_cli("train-check", str(path), "--allow-exec", "--format", "json")
        rep = json.loads(p.stdout)
        assert p.returncode == expect, rep["findings"]
        if expect:
            assert {f["rule"] for f in rep["findings"]} & set(case.rules)


def test_language_server_session(tmp_path):
    import os

    codes = one_session(
        sys.executable, tmp_path, env=dict(os.environ, CONVLINT_CACHE_DIR=str(tmp_path / "cache"))
    )
    assert "CL411" in codes  # Optimize.DEFAULT without a representative dataset
