"""ExecuTorch (.pte) as a target: torch -> torch.export -> to_edge -> to_executorch, made at test
time by fixtures/generate.py. The portable-kernel and XNNPACK programs are faithful (equivalent,
no error finding); the same net cast to float16 is divergent with the three weight layers named
(CL202). Per-layer outputs come from ETDump for the portable program; inside the XNNPACK delegate
and for the float16 program only the outputs are compared, and the metadata says so. TVM is
skipped with a note (no Relax importer)."""

import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.pipeline import PipelineOptions, check_paths

pytest.importorskip("executorch", reason="install convlint[executorch] for the .pte tests")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    sys.path.insert(0, str(ROOT / "fixtures"))
    from generate import executorch_pairs

    d = tmp_path_factory.mktemp("pte")
    return d, {p["target"]: p for p in executorch_pairs(d)}


def _check(d: Path, target: str, **kw):
    return check_paths(
        str(d / "net.pt2"), str(d / target), PipelineOptions(DiffOptions(num_inputs=4, **kw))
    )


@pytest.mark.parametrize("target", ["net.portable.pte", "net.xnnpack.pte"])
def test_portable_and_xnnpack_programs_are_equivalent_and_tvm_is_skipped_with_a_note(pairs, target):
    d, manifest = pairs
    assert manifest[target]["verdict"] == "equivalent"
    r = _check(d, target)
    assert r.verdict == "equivalent"
    assert not [f for f in r.findings if f.severity in ("error", "warning")], r.findings
    notes = [f for f in r.findings if f.rule == "CL011" and f.evidence.get("model") == "target"]
    assert notes and "no ExecuTorch (.pte) importer" in notes[0].message


def test_float16_program_is_divergent_with_the_layers_named(pairs):
    d, manifest = pairs
    assert manifest["net.fp16.pte"]["verdict"] == "divergent"
    r = _check(d, "net.fp16.pte", use_tvm=False)
    assert r.verdict == "divergent"
    assert {f.layer for f in r.findings if f.rule == "CL202"} == {"conv1", "conv2", "fc"}
    assert all("float16" in f.message for f in r.findings if f.rule == "CL202")


def test_portable_layers_are_described_and_captured_through_etdump(pairs):
    from convlint.analyzers.models import open_model

    d, _ = pairs
    x = np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)
    with open_model(str(d / "net.portable.pte")) as r:
        assert r.format == "executorch"
        layers = r.layers()
        kinds = [x.semantics.get("kernel", {}).get("kind") for x in layers]
        assert kinds.count("conv") == 2 and kinds.count("dense") == 1
        conv = next(x for x in layers if x.semantics.get("kernel", {}).get("kind") == "conv")
        assert conv.semantics["kernel"]["pads"] == (1, 1, 1, 1)
        outs = r.intermediates({"input_0": x})
        assert all(o in outs for layer in layers for o in layer.outputs)
        # the last kernel call's recorded output is the program's output
        assert np.allclose(outs[layers[-1].outputs[0]], r.run({"input_0": x})["output_0"])
        assert r.metadata()["conversion_evidence"]["per_layer_capture"] == "per-layer"


@pytest.mark.parametrize(
    "target, why", [("net.xnnpack.pte", "XnnpackBackend delegate"), ("net.fp16.pte", "float16")]
)
def test_outputs_only_where_etdump_cannot_see_and_the_metadata_says_so(pairs, target, why):
    from convlint.analyzers.models import open_model

    d, _ = pairs
    with open_model(str(d / target)) as r:
        ev = r.metadata()["conversion_evidence"]
        assert ev["per_layer_capture"] == "outputs-only" and why in ev["capture_note"]
        outs = r.intermediates({"input_0": np.zeros((1, 3, 16, 16), np.float32)})
        assert list(outs) == ["output_0"]


def test_a_pte_extension_on_other_bytes_and_a_lying_header_are_refused(tmp_path, pairs):
    from convlint.analyzers.errors import ModelLoadError
    from convlint.analyzers.models import open_model
    from convlint.analyzers.models.detect import detect_format

    p = tmp_path / "x.pte"
    p.write_bytes(b"not a program at all")
    with pytest.raises(ModelLoadError):
        open_model(str(p)).load()
    d, _ = pairs
    b = bytearray((d / "net.portable.pte").read_bytes())
    assert detect_format(str(d / "net.portable.pte")) == "executorch"
    b[32:40] = (1 << 40).to_bytes(8, "little")  # the segment size claims a terabyte
    p.write_bytes(bytes(b))
    with pytest.raises(ModelLoadError, match="declares"):
        open_model(str(p)).load()


def test_a_program_planning_more_memory_than_the_limit_is_refused_before_it_runs(tmp_path, pairs):
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    from convlint.analyzers.errors import ModelLoadError
    from convlint.analyzers.models import open_model

    d, _ = pairs
    pte = deserialize_pte_binary((d / "net.portable.pte").read_bytes())
    pte.program.execution_plan[0].non_const_buffer_sizes[1] = 1 << 32  # 4 GiB of activations
    p = tmp_path / "greedy.pte"
    p.write_bytes(bytes(serialize_pte_binary(pte)))
    with pytest.raises(ModelLoadError, match="plans 4294967296 bytes"):
        open_model(str(p)).load()
