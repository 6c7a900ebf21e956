"""`convlint diff` on every fixture pair: clean pairs are equivalent, faulty twins divergent."""

import json

import pytest

from conftest import manifest_pairs, run_cli
from convlint.analyzers.differential.check import DiffOptions, diff_paths

PAIRS = manifest_pairs()


@pytest.mark.slow
@pytest.mark.parametrize("pair", PAIRS, ids=[f"{p['source']}->{p['target']}" for p in PAIRS])
def test_pair_verdict(models, pair):
    r = diff_paths(str(models / pair["source"]), str(models / pair["target"]), DiffOptions(num_inputs=8))
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
    p = run_cli("diff", "fixtures/models/gelu_exact.keras", "fixtures/models/gelu_exact.tf2onnx.onnx")
    assert p.returncode == 1
    assert "CRASH" in p.stdout and "Erfc" in p.stdout and "Traceback" not in p.stdout + p.stderr


@pytest.mark.slow
def test_inputs_from_npz_and_tolerances(models, tmp_path):
    import numpy as np

    np.savez(tmp_path / "x.npz", image=np.random.default_rng(0).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32))
    r = diff_paths(str(models / "mobilenet.keras"), str(models / "mobilenet.dynint8.tflite"),
                   DiffOptions(inputs_path=str(tmp_path / "x.npz"), use_tvm=False))
    assert r.inputs == {"count": 3, "origin": "file"} and r.verdict == "divergent"
    loose = diff_paths(str(models / "mobilenet.keras"), str(models / "mobilenet.dynint8.tflite"),
                       DiffOptions(num_inputs=4, atol=0.1, rtol=0.1, use_tvm=False))
    assert loose.verdict == "equivalent"
