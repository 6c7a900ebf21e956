"""OpenVINO IR (.xml + .bin) as a target: ONNX -> OpenVINO with `ov.save_model`'s default
(every float weight compressed to float16) is found, localized and repaired by re-converting with
`compress_to_fp16=False`; the faithful twin is equivalent; TVM is skipped with a note."""

from pathlib import Path

import numpy as np
import pytest

from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.pipeline import PipelineOptions, check_paths

ov = pytest.importorskip("openvino")


def _source(path: Path) -> str:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal((4, 8, 1, 1)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"),
             helper.make_node("Conv", ["r", "w2"], ["y"], name="head")]
    g = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                          inits)
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return str(path)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("ov")
    src = _source(d / "net.onnx")
    model = ov.convert_model(src)
    ov.save_model(model, str(d / "net.fp16.xml"))  # the default: compress_to_fp16=True
    ov.save_model(model, str(d / "net.xml"), compress_to_fp16=False)
    return d, src


def test_default_fp16_compression_found_localized_and_repaired(pair):
    d, src = pair
    tgt = d / "net.fp16.xml"
    before = tgt.read_bytes(), (d / "net.fp16.bin").read_bytes()
    r = check_paths(src, str(tgt), PipelineOptions(DiffOptions(num_inputs=4, use_tvm=False),
                                                   repair=True))
    assert r.verdict == "divergent"
    rules = {f.rule: f for f in r.findings if f.severity == "error"}
    assert {f.layer for f in r.findings if f.rule == "CL202"} == {"conv1", "head"}
    assert rules["CL110"].layer == "conv1"
    # weights, not an attribute: the layer replayed alone with the source's own attributes already
    # reproduces the target within the replay's tolerance, so no as-if attribute is blamed
    assert "CL305" not in rules
    fix = rules["CL403"].repair
    assert fix.verified and "compress_to_fp16=False" in fix.description
    assert Path(fix.output).exists() and Path(fix.output).with_suffix(".bin").exists()
    assert (tgt.read_bytes(), (d / "net.fp16.bin").read_bytes()) == before  # inputs untouched
    again = check_paths(src, fix.output, PipelineOptions(DiffOptions(num_inputs=4, use_tvm=False),
                                                         localize=False))
    assert again.verdict == "equivalent"


def test_faithful_twin_is_equivalent_and_tvm_is_skipped_with_a_note(pair):
    d, src = pair
    r = check_paths(src, str(d / "net.xml"), PipelineOptions(DiffOptions(num_inputs=4)))
    assert r.verdict == "equivalent"
    assert not [f for f in r.findings if f.severity == "error"]
    notes = [f for f in r.findings if f.rule == "CL011" and f.evidence.get("model") == "target"]
    assert notes and "no OpenVINO IR importer" in notes[0].message


def test_layers_are_described_and_intermediates_named(pair):
    from convlint.analyzers.models import open_model

    d, _ = pair
    with open_model(str(d / "net.xml")) as r:
        layers = {x.name: x for x in r.layers()}
        conv = next(x for x in layers.values() if x.op_type == "Convolution")
        assert conv.semantics["kernel"]["pads"] == (1, 1, 1, 1)
        outs = r.intermediates({"x": np.zeros((1, 3, 8, 8), np.float32)})
        assert all(o in outs for x in layers.values() for o in x.outputs)


def test_an_xml_file_that_is_no_ir_is_refused(tmp_path):
    from convlint.analyzers.errors import ModelLoadError
    from convlint.analyzers.models.detect import detect_format

    p = tmp_path / "pom.xml"
    p.write_text('<?xml version="1.0"?>\n<project></project>\n')
    with pytest.raises(ModelLoadError):
        detect_format(str(p))


def _lse_source(path: Path, opset: int) -> str:
    """conv -> relu -> ReduceLogSumExp over channels (axes an attribute before opset 18, an
    input from 18) -> sigmoid gate -> mul -> conv."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.standard_normal((4, 8, 1, 1)).astype(np.float32), "w2")]
    if opset >= 18:
        inits.append(numpy_helper.from_array(np.array([1], np.int64), "axes"))
        lse = helper.make_node("ReduceLogSumExp", ["r", "axes"], ["l"], name="lse")
    else:
        lse = helper.make_node("ReduceLogSumExp", ["r"], ["l"], name="lse", axes=[1])
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu1"), lse,
             helper.make_node("Sigmoid", ["l"], ["a"], name="gate"),
             helper.make_node("Mul", ["r", "a"], ["m"], name="attend"),
             helper.make_node("Conv", ["m", "w2"], ["y"], name="head")]
    g = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                       [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(m, str(path))
    return str(path)


@pytest.mark.parametrize("opset", [13, 18])
def test_an_ignored_attribute_is_named_by_the_as_if_replay(tmp_path, opset):
    """OpenVINO's ONNX frontend reduces an opset-13 ReduceLogSumExp over every axis (its axes
    attribute is not read): the source's op replayed with the attribute left out reproduces
    the target (CL305 axes -> unset); at opset 18 (the twin) the conversion is faithful."""
    src = _lse_source(tmp_path / "src.onnx", opset)
    tgt = tmp_path / "tgt.xml"
    ov.save_model(ov.convert_model(src), str(tgt), compress_to_fp16=False)
    r = check_paths(src, str(tgt), PipelineOptions(DiffOptions(num_inputs=2, use_tvm=False)))
    hits = [f for f in r.findings if f.rule == "CL305"]
    if opset == 18:
        assert r.verdict == "equivalent" and not hits
        return
    (f,) = hits
    assert f.layer == "lse" and f.stage == "hyperparameters"
    assert f.evidence["changes"] == [["axes", None]] and f.evidence["source"] == [[1]]
