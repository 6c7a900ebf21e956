"""TorchScript targets are repaired by editing their forward graphs (repair/torchscript.py).

Each target is traced from a hand-written torch module that makes the fault onnx2torch 1.5.15
makes (a CumSum summed in reverse, a ReduceMax over a shifted axis, a GatherElements crashing on
negative indices), beside a faithful twin; the sources are small ONNX graphs built here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")

from onnx import helper  # noqa: E402
from torch_targets import Fn, onnx_source  # noqa: E402

from convlint.analyzers.differential.check import DiffOptions  # noqa: E402
from convlint.analyzers.pipeline import PipelineOptions, check_paths, diff_paths  # noqa: E402
from convlint.analyzers.repair.attributes import AttrEdit  # noqa: E402
from convlint.analyzers.repair.plan import Plan, Step  # noqa: E402
from convlint.analyzers.repair.torchscript import patch_torchscript  # noqa: E402

RNG = np.random.default_rng(0)
W = (RNG.standard_normal((6, 6)) * 0.5).astype(np.float32)
IDX = RNG.integers(-8, 8, size=(1, 6, 4)).astype(np.int64)
IDX[0, 0, 0] = -1
# native runs only: TVM would add an ONNX export of each target (the repairs' logic is the same)
OPTS = DiffOptions(num_inputs=4, use_tvm=False)






def _save(net: torch.nn.Module, x_shape, path: Path) -> str:
    torch.jit.save(torch.jit.trace(net.eval(), (torch.rand(*x_shape),)), str(path))
    return str(path)


def _reverse_cumsum(t):
    """onnx2torch's CumSum read with ``reverse`` defaulting to 1."""
    return torch.flip(torch.cumsum(torch.flip(t, [1]), 1), [1])


class _CumNet(torch.nn.Module):
    def __init__(self, reverse: bool):
        super().__init__()
        self.proj = torch.nn.Linear(6, 6, bias=False)
        self.proj.weight.data = torch.from_numpy(W.T.copy())
        self.cumsum = Fn(_reverse_cumsum if reverse else (lambda t: torch.cumsum(t, 1)))
        self.act = Fn(torch.tanh)

    def forward(self, x):
        return self.act(self.cumsum(self.proj(x)))


def _cumsum_pair(tmp: Path, reverse: bool) -> tuple:
    src = onnx_source(tmp / "cumsum.onnx", [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
        helper.make_node("CumSum", ["h", "axis"], ["c"], name="cumsum"),
        helper.make_node("Tanh", ["c"], ["y"], name="act")],
        {"w": W, "axis": np.array(1, np.int64)}, [1, 8, 6], [1, 8, 6])
    return src, _save(_CumNet(reverse), (1, 8, 6), tmp / ("faulty.pt" if reverse else "clean.pt"))


def _opts(**kw) -> PipelineOptions:
    return PipelineOptions(OPTS, **kw)


def test_cumsum_reverse_is_found_and_the_as_if_attribute_patched_back(tmp_path):
    src, tgt = _cumsum_pair(tmp_path, reverse=True)
    before = Path(tgt).read_bytes()
    r = check_paths(src, tgt, _opts(repair=True))
    f = next(f for f in r.findings if f.rule == "CL305")
    assert f.layer == "cumsum" and f.evidence["changes"] == [["reverse", 1]]
    assert Path(tgt).read_bytes() == before
    # the as-if finding's source value, on the module named after the source layer
    plan = Plan({0: Step("patch-attributes", "cumsum", "", edits=[
        AttrEdit(f.layer, a, v) for (a, _), v in zip(f.evidence["changes"], f.evidence["source"],
                                                       strict=True)])})
    out = str(tmp_path / "faulty.repaired.pt")
    assert patch_torchscript(tgt, plan, out) == ["cumsum"]
    assert diff_paths(src, out, OPTS).verdict == "equivalent"
    assert Path(tgt).read_bytes() == before


def test_reverse_inserted_where_the_source_sums_backwards(tmp_path):
    src, tgt = _cumsum_pair(tmp_path, reverse=False)
    out = str(tmp_path / "rev.pt")
    edit = AttrEdit("cumsum", "reverse", 1)
    plan = Plan({0: Step("patch-attributes", "cumsum", "", edits=[edit])})
    assert patch_torchscript(tgt, plan, out) == ["cumsum"]
    x = torch.rand(1, 8, 6)
    h = x @ torch.from_numpy(W)
    want = torch.tanh(torch.flip(torch.cumsum(torch.flip(h, [1]), 1), [1]))
    assert torch.allclose(torch.jit.load(out)(x), want, atol=1e-5)


class _MaxNet(torch.nn.Module):
    """ReduceMax(axes=[-2, -1], keepdims=0) as onnx2torch reads it: the second axis shifted."""

    def __init__(self, dims: tuple):
        super().__init__()
        self.global_max = Fn(lambda t: t.max(dim=dims[0])[0].max(dim=dims[1])[0])

    def forward(self, x):
        return self.global_max(x)


def test_reducemax_axes_set_on_a_chain_of_one_axis_reductions(tmp_path):
    src = onnx_source(tmp_path / "max.onnx", [
        helper.make_node("ReduceMax", ["x"], ["y"], name="global_max", axes=[-2, -1], keepdims=0)],
        {}, [1, 3, 8, 8], [1, 3])
    tgt = _save(_MaxNet((-2, -2)), (1, 3, 8, 8), tmp_path / "max.pt")
    assert diff_paths(src, tgt, OPTS).verdict == "divergent"
    out = str(tmp_path / "max.repaired.pt")
    plan = Plan({0: Step("patch-attributes", "global_max", "",
                         edits=[AttrEdit("global_max", "axes", [-2, -1])])})
    assert patch_torchscript(tgt, plan, out) == ["global_max"]
    assert diff_paths(src, out, OPTS).verdict == "equivalent"


def test_unknown_module_or_attribute_is_not_done_and_the_copy_unchanged(tmp_path):
    src, tgt = _cumsum_pair(tmp_path, reverse=True)
    out = str(tmp_path / "same.pt")
    plan = Plan({0: Step("patch-attributes", "output", "", edits=[
        AttrEdit("output", "reverse", 0), AttrEdit("cumsum", "no_such_attribute", 3)])})
    assert patch_torchscript(tgt, plan, out) == []
    assert Path(out).read_bytes() == Path(tgt).read_bytes()


class _GatherNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(8, 8, bias=False)
        self.proj.weight.data = torch.from_numpy(W8.T.copy())
        self.pick = Fn(lambda t, i: torch.gather(t, 2, i))
        self.initializers = torch.nn.Module()
        self.initializers.register_buffer("idx", torch.zeros(1, 6, 4, dtype=torch.long))

    def forward(self, x):
        return torch.tanh(self.pick(self.proj(x), self.initializers.idx))


W8 = (RNG.standard_normal((8, 8)) * 0.4).astype(np.float32)


def _gather_pair(tmp: Path, idx: np.ndarray) -> tuple:
    src = onnx_source(tmp / "gather.onnx", [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
        helper.make_node("GatherElements", ["h", "idx"], ["g"], name="pick", axis=2),
        helper.make_node("Tanh", ["g"], ["y"], name="act")],
        {"w": W8, "idx": IDX}, [1, 6, 8], [1, 6, 4])
    traced = torch.jit.trace(_GatherNet().eval(), (torch.rand(1, 6, 8),))
    traced.initializers.idx = torch.from_numpy(idx)  # as converted: ONNX's indices, unwrapped
    path = tmp / "gather.pt"
    torch.jit.save(traced, str(path))
    return src, str(path)


def test_gather_crash_on_negative_indices_is_named_and_wrapped(tmp_path):
    src, tgt = _gather_pair(tmp_path, IDX)
    before = Path(tgt).read_bytes()
    r = check_paths(src, tgt, _opts(repair=True))
    assert r.verdict == "crash"
    f = next(f for f in r.findings if f.rule == "CL402")
    assert f.layer == "pick" and f.repair is not None and f.repair.verified, f
    assert Path(f.repair.output).name == "gather.repaired.pt"
    assert diff_paths(src, f.repair.output, OPTS).verdict == "equivalent"
    assert Path(tgt).read_bytes() == before


def test_faithful_twins_raise_nothing_and_write_nothing(tmp_path):
    src, tgt = _cumsum_pair(tmp_path, reverse=False)
    r = check_paths(src, tgt, _opts(repair=True))
    assert r.verdict == "equivalent"
    assert not [f for f in r.findings if f.severity == "error"]
    g_src, g_tgt = _gather_pair(tmp_path, np.where(IDX < 0, IDX + 8, IDX))
    r = check_paths(g_src, g_tgt, _opts(repair=True))
    assert r.verdict == "equivalent"
    assert not [f for f in r.findings if f.severity == "error"]
    assert not list(tmp_path.glob("*.repaired*"))
