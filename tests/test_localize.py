"""Staged localization and verified repair, end to end on faulty twins, and silence on clean
twins."""

import shutil
import sys

import numpy as np
import pytest

from conftest import MODELS, ROOT
from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.localize.align import channel_score, match_kernels
from convlint.analyzers.localize.canonical import Kernel, to_native
from convlint.analyzers.localize.graph import first_divergent
from convlint.analyzers.models.base import LayerInfo
from convlint.analyzers.pipeline import PipelineOptions, check_paths

sys.path.insert(0, str(ROOT / "fixtures"))
import faults  # noqa: E402

OPTS = DiffOptions(num_inputs=6)


def run(source, target, tmp_path, repair=True, opts=OPTS):
    tgt = tmp_path / target.name
    if not tgt.exists():
        shutil.copy(target, tgt)
    return check_paths(str(MODELS / source), str(tgt), PipelineOptions(opts, repair=repair))


def inject_and_run(tmp_path, source, clean, fault, opts=OPTS):
    """Inject ``fault`` into a copy of the clean target, check it with repair; the fault info
    and the report."""
    out = tmp_path / f"{fault}.onnx"
    info = faults.inject(str(MODELS / clean), fault, str(out))
    r = run(source, out, tmp_path, opts=opts)
    assert r.verdict == "divergent", r.metrics
    return info, r


def by_rule(report):
    out = {}
    for f in report.findings:
        out.setdefault(f.rule, []).append(f)
    return out


# ---------------------------------------------------------------- units (pure numpy)
def kernel(name, w, i=0, bn=None):
    return Kernel(name, "conv", w, None, name + "/w", None, "OIHW", "float32", bn=bn, index=i)


def test_channel_score_is_invariant_to_bn_scaling_and_blind_to_unrelated_kernels():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(8, 4, 3, 3))
    scale = rng.uniform(-2, 2, 8).reshape(8, 1, 1, 1)
    assert channel_score(w, w * scale) == pytest.approx(1.0)
    assert channel_score(w, rng.normal(size=w.shape)) < 0.3


def test_kernels_align_by_weights_not_by_name_or_order():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(8, 4, 3, 3)), rng.normal(size=(8, 4, 3, 3))
    src = [kernel("first", a, 0), kernel("second", b, 1)]
    tgt = [kernel("Conv__9", b * 2, 0), kernel("Conv__3", a * 0.5, 1)]
    matches, un_s, un_t = match_kernels(src, tgt)
    assert {(m.source.layer, m.target.layer) for m in matches} == {
        ("first", "Conv__3"),
        ("second", "Conv__9"),
    }
    assert un_s == un_t == []


def test_layout_round_trip():
    rng = np.random.default_rng(2)
    for layout, shape in (("HWIO", (3, 3, 4, 8)), ("OHWI", (8, 3, 3, 4)), ("1HWC", (1, 3, 3, 8)),
                          ("IO", (4, 8)), ("HWIM", (3, 3, 8, 1))):
        from convlint.analyzers.localize.canonical import _canon

        w = rng.normal(size=shape)
        assert np.array_equal(to_native(_canon(w, layout), layout), w)


def test_fused_layers_are_not_blamed():
    chain = ["conv", "bn", "relu", "conv2", "bn2", "relu2"]
    layers = [LayerInfo(n, "X", inputs=[chain[i - 1]] if i else []) for i, n in enumerate(chain)]
    # conv and bn have no tensor of their own in the target; relu matches; conv2's group diverges
    errors = {"conv": 0.8, "bn": 0.9, "relu": 1e-7, "conv2": 1.3, "bn2": 0.9, "relu2": 0.3}
    layer, group = first_divergent(layers, errors, 1e-4, frozenset({"conv", "conv2"}))
    assert layer == "conv2" and group == ["conv2", "bn2", "relu2"]
    assert first_divergent(layers, {"conv": 0.8, "bn": 1e-7, "relu": 1e-7}, 1e-4)[0] is None


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_int8_weights_localized_to_layer_and_converter_flag_repaired(tmp_path):
    r = run("mobilenet.keras", MODELS / "mobilenet.dynint8.tflite", tmp_path)
    f = by_rule(r)
    assert f["CL110"][0].layer == "project_conv" and f["CL110"][0].stage == "graph"
    (q,) = f["CL201"]
    assert q.layer == "project_conv" and q.stage == "parameters"
    (tool,) = f["CL401"]
    assert tool.stage == "conversion-tool" and "Optimize.DEFAULT" in tool.message
    assert tool.repair.kind == "rewrite-call" and tool.repair.verified
    assert tool.repair.output == str(tmp_path / "mobilenet.dynint8.repaired.tflite")
    assert tool.repair.metrics_after["verdict"] == "equivalent"
    assert tool.evidence["reconversions"]["float"]["verdict"] == "equivalent"


@pytest.mark.slow
@pytest.mark.parametrize("source,target,layer", [
    ("resnet.keras", "resnet.tf2onnx.tampered.onnx", "res_conv2"),
    ("inception.pt2", "inception.torch.tampered.onnx", "mix.0"),
    ("mobilenet.tflite", "mobilenet.tflite2onnx.tampered.onnx", None),
])
def test_tampered_tensor_localized_and_patched(tmp_path, source, target, layer):
    r = run(source, MODELS / target, tmp_path)
    f = by_rule(r)
    (bad,) = f["CL204"]
    assert f["CL110"][0].layer == bad.layer
    if layer:
        assert bad.layer == layer
    assert bad.location.target_node
    rep = bad.repair
    assert (
        rep.kind == "patch-weights"
        and rep.verified
        and rep.metrics_after["verdict"] == "equivalent"
    )
    assert rep.output.endswith(".repaired.onnx")
    assert (MODELS / target).read_bytes() == (tmp_path / target).read_bytes()  # input untouched


@pytest.mark.slow
@pytest.mark.parametrize("fault", faults.WEIGHTS)
@pytest.mark.parametrize("source,clean", [("resnet.keras", "resnet.tf2onnx.onnx"),
                                          ("inception.pt2", "inception.torch.onnx")])
def test_injected_weight_faults(tmp_path, fault, source, clean):
    # float16 rounding stays within the default 1e-4 on these small models: check it tightly
    opts = DiffOptions(num_inputs=6, atol=1e-6, rtol=1e-6) if fault == "fp16-weights" else OPTS
    info, r = inject_and_run(tmp_path, source, clean, fault, opts)
    f = by_rule(r)
    hits = f[info["expect_rule"]]
    (hit,) = [h for h in hits if h.location.target_node == info["node"]]
    assert f["CL110"][0].layer == hit.layer
    assert hit.repair and hit.repair.verified, hit.repair


@pytest.mark.slow
@pytest.mark.parametrize("source,target", [("mobilenet.keras", "mobilenet.tflite"),
                                           ("resnet.pt2", "resnet.torch.onnx"),
                                           ("inception.keras", "inception.tf2onnx.onnx"),
                                           ("resnet.tflite", "resnet.tflite2onnx.onnx")])
def test_clean_twins_get_no_localization_finding(tmp_path, source, target):
    r = run(source, MODELS / target, tmp_path)
    assert r.verdict == "equivalent"
    assert not [f for f in r.findings if f.severity != "info"]
    assert not list(tmp_path.glob("*repaired*"))


@pytest.mark.slow
@pytest.mark.parametrize("source,target", [("resnet.keras", "resnet.tf2onnx.onnx"),
                                           ("inception.pt2", "inception.torch.onnx")])
def test_clean_twins_stay_silent_at_the_fp16_tolerance(tmp_path, source, target):
    r = run(source, MODELS / target, tmp_path, opts=DiffOptions(num_inputs=6, atol=1e-6, rtol=1e-6))
    assert r.verdict == "equivalent", [f.message for f in r.findings]
    assert not [f for f in r.findings if f.severity != "info"]


@pytest.mark.slow
@pytest.mark.parametrize("fault", faults.HYPER)
@pytest.mark.parametrize("source,clean", [("mobilenet.pt2", "mobilenet.torch.onnx"),
                                          ("mobilenet.keras", "mobilenet.tf2onnx.onnx")])
def test_injected_hyperparameter_faults(tmp_path, fault, source, clean):
    info, r = inject_and_run(tmp_path, source, clean, fault)
    f = by_rule(r)
    hits = [h for h in f.get(info["expect_rule"], []) if h.location.target_node == info["node"]]
    if "attribute" in info:  # a dilation fault changes the padding too: both are reported
        hits = [h for h in hits if h.evidence["attribute"] == info["attribute"]]
    assert len(hits) == 1, [x.message for x in r.findings]
    hit = hits[0]
    assert hit.stage == "hyperparameters"
    assert f["CL110"][0].layer == hit.layer
    assert hit.repair.kind == "patch-attributes" and hit.repair.verified, hit.repair


@pytest.mark.slow
@pytest.mark.parametrize("fault", faults.GRAPH)
@pytest.mark.parametrize("source,clean", [("mobilenet.pt2", "mobilenet.torch.onnx"),
                                          ("resnet.keras", "resnet.tf2onnx.onnx"),
                                          ("inception.keras", "inception.tf2onnx.onnx"),
                                          # torch's residual add and ReLU are functional calls
                                          ("resnet.pt2", "resnet.torch.onnx"),
                                          # a TFLite source: activations fused into its ops
                                          ("mobilenet.tflite", "mobilenet.tflite2onnx.onnx")])
def test_injected_graph_faults(tmp_path, fault, source, clean):
    info, r = inject_and_run(tmp_path, source, clean, fault,
                             DiffOptions(num_inputs=4, atol=1e-6, rtol=1e-6))
    f = by_rule(r)
    hits = f.get(info["expect_rule"], [])
    assert hits, [x.message for x in r.findings]
    named = [h for h in hits if info["node"] in h.evidence["nodes"] or "removed" in info]
    assert named and all(h.stage == "graph" for h in hits)
    assert all(h.repair and h.repair.kind == "patch-graph" and h.repair.verified for h in hits)


@pytest.mark.slow
@pytest.mark.parametrize("fault", faults.INPUT)
@pytest.mark.parametrize("source,clean", [("mobilenet.pt2", "mobilenet.torch.onnx"),
                                          ("resnet.keras", "resnet.tf2onnx.onnx"),
                                          ("inception.tflite", "inception.tflite2onnx.onnx")])
def test_injected_input_faults(tmp_path, fault, source, clean):
    info, r = inject_and_run(tmp_path, source, clean, fault)
    (hit,) = by_rule(r)[info["expect_rule"]]
    assert hit.stage == "input" and hit.layer == by_rule(r)["CL110"][0].layer
    assert hit.repair.kind == "patch-graph" and hit.repair.verified, hit.repair
    if fault == "input-scaling":
        assert hit.evidence["scale"] == pytest.approx(0.5) and hit.evidence[
            "shift"
        ] == pytest.approx(0.5)


@pytest.mark.slow
def test_bn_epsilon_of_a_port_is_estimated_and_repaired(tmp_path):
    sys.path.insert(0, str(ROOT / "bench" / "faults"))
    import cases

    shutil.copy(MODELS / "resnet.keras", tmp_path / "resnet.keras")
    case = cases._epsilon_case(tmp_path, "resnet")
    r = run("resnet.keras", tmp_path / case["target"], tmp_path,
            opts=DiffOptions(num_inputs=4, atol=1e-6, rtol=1e-6))
    (hit,) = by_rule(r)["CL303"]
    assert hit.layer == "stem_bn" and hit.stage == "hyperparameters"
    assert hit.evidence["epsilon_target"] == pytest.approx(1e-5, rel=1e-2)
    assert hit.evidence["epsilon_source"] == pytest.approx(1e-3)
    assert hit.repair.verified
    assert "CL204" not in by_rule(r)


@pytest.mark.slow
def test_gelu_approximation_and_its_clean_twin(tmp_path):
    sys.path.insert(0, str(ROOT / "bench" / "faults"))
    import cases

    cases.transformer(tmp_path)
    opts = DiffOptions(num_inputs=4, atol=1e-6, rtol=1e-6)
    src = str(tmp_path / "transformer.pt2")
    r = check_paths(src, str(tmp_path / "transformer.gelu-exact.onnx"), PipelineOptions(opts))
    (hit,) = by_rule(r)["CL304"]
    assert hit.layer == "act" and hit.evidence == {"source": "tanh", "target": "none"}
    assert {f.rule for f in r.findings if f.severity == "error"} == {"CL100", "CL110", "CL304"}
    clean = check_paths(src, str(tmp_path / "transformer.torch.onnx"), PipelineOptions(opts))
    assert clean.verdict == "equivalent" and not [f for f in clean.findings if f.severity != "info"]


@pytest.mark.slow
def test_onnx_qdq_weights_are_aligned_through_dequantize_linear(tmp_path):
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.data = iter([{"input": np.random.default_rng(i).uniform(-1, 1, (1, 3, 32, 32))
                               .astype(np.float32)} for i in range(4)])

        def get_next(self):
            return next(self.data, None)

    qdq = tmp_path / "resnet.qdq.onnx"
    quantize_static(
        str(MODELS / "resnet.torch.onnx"),
        str(qdq),
        Reader(),
        quant_format=QuantFormat.QDQ,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QInt8,
        per_channel=True,
    )
    r = run("resnet.pt2", qdq, tmp_path)
    kernels = r.extra["localization"]["alignment"]["kernels"]
    assert {k["source"] for k in kernels} == {"stem.0", "conv1", "conv2", "fc"}
    assert all(k["score"] > 0.999 for k in kernels)
    # weights and activations quantized on purpose, calibrated on the input range: int8 noise
    # (tests/test_quantization.py), not a fault of the weights
    assert r.verdict == "equivalent" and not [x for x in r.findings if x.severity == "error"]
    assert [x.rule for x in r.findings if x.rule.startswith("CL2")] == ["CL206"]
