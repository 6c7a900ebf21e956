"""`convlint diff` on every fixture pair: clean pairs are equivalent, faulty twins divergent."""

import json

import pytest

from conftest import manifest_pairs, run_cli
from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.pipeline import diff_paths

PAIRS = manifest_pairs()


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS, ids=[f"{p['source']}->{p['target']}" for p in PAIRS])
def test_pair_verdict(models, pair):
    r = diff_paths(
        str(models / pair["source"]), str(models / pair["target"]), DiffOptions(num_inputs=8)
    )
    assert r.verdict == pair["expected"], [f.message for f in r.findings]
    rules = {f.rule for f in r.findings}
    for rule in pair["rules"]:
        assert rule in rules
    if pair["expected"] == "equivalent":
        # a clean twin: no error and no warning beyond the ones the pair is known for
        unexpected = [f for f in r.findings if f.severity != "info" and f.rule not in pair["rules"]]
        assert not unexpected, [f.message for f in unexpected]
        assert r.exit_code == 0 and r.metrics["cosine_min"] > 0.99999
    elif pair["expected"] == "divergent":
        assert r.exit_code == 1 and "CL100" in rules
        assert r.metrics["max_abs"] > 1e-3 and r.metrics["top1_agreement"] is not None
    else:
        assert r.exit_code == 1 and "CL003" in rules


@pytest.mark.slow
def test_cli_json_clean_pair(models):
    p = run_cli("diff", "fixtures/models/mobilenet.keras", "fixtures/models/mobilenet.tflite",
                "--format", "json", "--num-inputs", "4")
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)  # stdout holds the one JSON document and nothing else
    assert d["verdict"] == "equivalent" and d["inputs"] == {"count": 4, "origin": "random"}
    assert d["source"] == {"path": "fixtures/models/mobilenet.keras", "format": "keras"}
    assert d["target"]["format"] == "tflite"
    assert d["metrics"]["top1_agreement"] == 1.0


@pytest.mark.slow
def test_cli_json_faulty_twin(models):
    p = run_cli("diff", "fixtures/models/resnet.pt2", "fixtures/models/resnet.torch.tampered.onnx",
                "--format", "json", "--num-inputs", "4", "--no-tvm")
    assert p.returncode == 1, p.stderr
    d = json.loads(p.stdout)
    assert d["verdict"] == "divergent" and d["findings"][0]["rule"] == "CL100"
    assert d["metrics"]["max_abs"] > 1e-3


@pytest.mark.slow
def test_cli_text_crash_names_the_node(models):
    p = run_cli(
        "diff", "fixtures/models/gelu_exact.keras", "fixtures/models/gelu_exact.tf2onnx.onnx"
    )
    assert p.returncode == 1
    assert "CRASH" in p.stdout and "Erfc" in p.stdout and "Traceback" not in p.stdout + p.stderr


@pytest.mark.slow
def test_inputs_from_npz_and_tolerances(models, tmp_path):
    import numpy as np

    np.savez(
        tmp_path / "x.npz",
        image=np.random.default_rng(0).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32),
    )
    r = diff_paths(str(models / "mobilenet.keras"), str(models / "mobilenet.dynint8.tflite"),
                   DiffOptions(inputs_path=str(tmp_path / "x.npz"), use_tvm=False))
    assert r.inputs == {"count": 3, "origin": "file"} and r.verdict == "divergent"
    loose = diff_paths(str(models / "mobilenet.keras"), str(models / "mobilenet.dynint8.tflite"),
                       DiffOptions(num_inputs=4, atol=0.1, rtol=0.1, use_tvm=False))
    assert loose.verdict == "equivalent"


def _se_block_with_normalization(folder):
    """A squeeze-and-excitation block behind a Normalization layer, as in EfficientNet and
    MobileNetV3, then a Dense on a 4-D tensor, as ConvNeXt's pointwise convolutions:
    TFLiteConverter writes their Reshapes with shapes computed in the graph (the batch is dynamic),
    and tf2onnx's from_function makes the Normalization's captured mean and variance graph inputs.
    Each used to cost the TVM cross-check (CL011)."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    x = keras.Input((12, 12, 3), name="image")
    n = keras.layers.Normalization(mean=[0.2, 0.4, 0.6], variance=[0.05, 0.1, 0.2], name="norm")(x)
    c = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(n)
    s = keras.layers.GlobalAveragePooling2D(name="squeeze")(c)
    s = keras.layers.Reshape((1, 1, 8), name="se_reshape")(s)
    s = keras.layers.Conv2D(8, 1, activation="sigmoid", name="excite")(s)
    y = keras.layers.Multiply(name="scale")([c, s])
    # a Dense on 4-D: Tensordot reshapes to [-1, 8] (ConvNeXt)
    y = keras.layers.Dense(8, name="pointwise")(y)
    y = keras.layers.Dense(4, name="head")(keras.layers.GlobalAveragePooling2D(name="pool")(y))
    m = keras.Model(x, y)
    m.save(folder / "se.keras")
    (folder / "se.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(m).convert())
    assert np.isfinite(m(np.ones((1, 12, 12, 3), "float32"))).all()
    return folder / "se.keras", folder / "se.tflite"


@pytest.mark.slow
def test_tvm_cross_checks_both_sides_of_a_keras_se_block_with_normalization(tmp_path):
    source, target = _se_block_with_normalization(tmp_path)
    r = diff_paths(str(source), str(target), DiffOptions(num_inputs=4))
    runs = r.extra["runs"]
    assert r.verdict == "equivalent" and r.exit_code == 0, [f.message for f in r.findings]
    assert "CL011" not in {f.rule for f in r.findings}, [f.message for f in r.findings]
    for role in ("source", "target"):
        assert runs[role]["tvm_error"] is None, runs[role]
        assert runs[role]["native_vs_tvm"]["max_abs"] < 1e-4, runs[role]
    assert runs["source"]["tvm_route"].startswith("tf2onnx")
    assert runs["target"]["tvm_route"] == "tflite -> relax.frontend.tflite"
    assert r.extra["metrics_tvm"]["cosine_min"] > 0.99999


def test_native_log_lines_stay_out_of_the_output_unless_verbose():
    # TFLite announces its XNNPACK delegate on file descriptor 2, past Python's logging
    quiet = run_cli("diff", "fixtures/models/mobilenet.keras", "fixtures/models/mobilenet.tflite",
                    "--no-tvm", "--num-inputs", "2")
    assert quiet.returncode == 0 and "XNNPACK" not in quiet.stderr and "INFO:" not in quiet.stderr
    loud = run_cli("diff", "fixtures/models/mobilenet.keras", "fixtures/models/mobilenet.tflite",
                   "--no-tvm", "--num-inputs", "2", "-v")
    assert loud.returncode == 0 and "XNNPACK" in loud.stderr


def test_torchscript_inputs_get_the_deprecation_note(models):
    r = diff_paths(str(models / "resnet.ts.pt"), str(models / "resnet.torch.onnx"),
                   DiffOptions(num_inputs=2, use_tvm=False))
    notes = [f for f in r.findings if f.rule == "CL006"]
    assert r.verdict == "equivalent" and len(notes) == 1 and notes[0].severity == "info"
    assert "torch.export" in notes[0].message and r.exit_code == 0
    # the clean twin: an ExportedProgram gets no such note
    r = diff_paths(str(models / "resnet.pt2"), str(models / "resnet.torch.onnx"),
                   DiffOptions(num_inputs=2, use_tvm=False))
    assert r.verdict == "equivalent" and not [f for f in r.findings if f.rule == "CL006"]


def test_verbose_shows_the_engine_debug_log_and_the_default_does_not(tmp_path, models):
    """What the engine tolerates and goes on from is logged at debug level; -v shows it. Here: a
    result cache that cannot be written (its folder is a file) only costs speed."""
    import shutil

    for name in ("resnet.torch.onnx", "resnet.torch.tampered.onnx"):
        shutil.copy(models / name, tmp_path / name)
    (tmp_path / "blocker").write_text("a file where the cache folder would be")
    (tmp_path / "convlint.toml").write_text(
        'pairs = [{source = "resnet.torch.onnx", target = "resnet.torch.onnx"}]\ncache-dir = '
        '"blocker/cache"\n'
    )
    quiet = run_cli("check", str(tmp_path), "--no-tvm")
    loud = run_cli("check", str(tmp_path), "--no-tvm", "-v")
    assert quiet.returncode == loud.returncode == 0, quiet.stdout + quiet.stderr
    assert "debug:" not in quiet.stderr
    assert "convlint: debug: convlint.analyzers.project: result cache not written to" in loud.stderr


def test_repaired_output_names_the_repair_path_and_output_stays_its_alias():
    from convlint.server.cli import build_parser

    p = build_parser()
    for flag in ("--repaired-output", "--output"):
        args = p.parse_args(
            ["diff", "a.onnx", "b.onnx", "--repair", flag, "r.onnx", "--output-file", "rep.txt"]
        )
        assert args.output == "r.onnx" and args.output_file == "rep.txt"
    assert p.parse_args(["diff", "a.onnx", "b.onnx"]).output is None  # the twin: the default stem


def test_make_demo_says_exit_1_is_expected_for_the_faulty_pairs(tmp_path):
    """The demo's recipe, run with a stand-in convlint that exits 1 on the faulty twins: each
    faulty pair is followed by the explanation, the demo goes on, and make reports no error."""
    import shutil
    import subprocess

    from conftest import ROOT

    if shutil.which("make") is None:
        pytest.skip("no make")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "convlint"
    fake.write_text("#!/bin/sh\ncase \"$*\" in *dynint8*|*tampered*) exit 1;; esac\nexit 0\n")
    fake.chmod(0o755)
    stamp = ROOT / ".venv" / ".convlint-installed"
    p = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "demo",
            f"BIN={bin_dir}",
            f"STAMP={stamp}",
            f"-o{stamp}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.count("(exit 1: expected, the pair is divergent)") == 2, p.stdout
    assert "Error 1" not in p.stdout + p.stderr and "ignored" not in p.stdout + p.stderr
    # a pair that cannot be analysed (exit 2) still stops the demo
    fake.write_text("#!/bin/sh\ncase \"$*\" in *dynint8*) exit 2;; esac\nexit 0\n")
    p = subprocess.run(
        [
            "make",
            "-s",
            "--no-print-directory",
            "demo",
            f"BIN={bin_dir}",
            f"STAMP={stamp}",
            f"-o{stamp}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode != 0 and "(exit 2: could not analyse)" in p.stdout
