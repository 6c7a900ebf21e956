"""torch.export targets are repaired by editing their FX graph (repair/exported.py).

Each target is exported from a hand-written torch module that makes the fault onnx2torch 1.5.15
makes (a ReduceMax over a shifted axis, a ConvTranspose whose output_shape is ignored, a
GatherElements crashing on negative indices), beside a faithful twin; the sources are small ONNX
graphs built here. Every check runs natively (no TVM), as in test_repair_torchscript.py.
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

RNG = np.random.default_rng(0)
W8 = (RNG.standard_normal((8, 8)) * 0.4).astype(np.float32)
IDX = RNG.integers(-8, 8, size=(1, 6, 4)).astype(np.int64)
IDX[0, 0, 0] = -1
DW = (RNG.standard_normal((4, 3, 3, 3)) * 0.3).astype(np.float32)
DB = (RNG.standard_normal(3) * 0.1).astype(np.float32)
CW, CB = (RNG.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32), np.full(8, 0.05, np.float32)
FW, FB = (RNG.standard_normal((4, 8)) * 0.3).astype(np.float32), np.zeros(4, np.float32)
OPTS = DiffOptions(num_inputs=4, use_tvm=False)
REPAIR = PipelineOptions(OPTS, repair=True)




def _export(net: torch.nn.Module, x_shape, path: Path) -> str:
    torch.export.save(torch.export.export(net.eval(), (torch.rand(*x_shape),)), str(path))
    return str(path)




def _checked(src: str, tgt: str, rule: str, layer: str):
    """The pair checked with --repair: the finding of ``rule`` on ``layer``, its repair verified
    into a new file that checks equivalent, the target's bytes unchanged."""
    before = Path(tgt).read_bytes()
    r = check_paths(src, tgt, REPAIR)
    f = next(f for f in r.findings if f.rule == rule)
    assert f.layer == layer and f.repair is not None and f.repair.verified, f
    assert f.repair.output != tgt and Path(f.repair.output).name.startswith(Path(tgt).stem)
    assert diff_paths(src, f.repair.output, OPTS).verdict == "equivalent"
    assert Path(tgt).read_bytes() == before
    return r, f


def _clean(src: str, tgt: str, tmp: Path) -> None:
    r = check_paths(src, tgt, REPAIR)
    assert r.verdict == "equivalent"
    assert not [f for f in r.findings if f.severity == "error"]
    assert not list(tmp.glob("*.repaired*"))


# --------------------------------------------------------------------------- ReduceMax axes
class _MaxNet(torch.nn.Module):
    """conv, ReLU, then ReduceMax(axes=[-2, -1], keepdims=0) as onnx2torch reads it (the second
    axis shifted onto the channels: C == W keeps the shape), then a dense layer."""

    def __init__(self, dims: tuple):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.conv.weight.data, self.conv.bias.data = torch.from_numpy(CW), torch.from_numpy(CB)
        self.relu = torch.nn.ReLU()
        self.global_max = Fn(lambda t: t.max(dim=dims[0])[0].max(dim=dims[1])[0])
        self.fc = torch.nn.Linear(8, 4)
        self.fc.weight.data, self.fc.bias.data = torch.from_numpy(FW), torch.from_numpy(FB)

    def forward(self, x):
        return self.fc(self.global_max(self.relu(self.conv(x))))


def _max_pair(tmp: Path, dims: tuple) -> tuple:
    src = onnx_source(tmp / "max.onnx", [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], name="conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("ReduceMax", ["r"], ["m"], name="global_max", axes=[-2, -1], keepdims=0),
        helper.make_node("Gemm", ["m", "fw", "fb"], ["y"], name="fc", transB=1)],
        {"cw": CW, "cb": CB, "fw": FW, "fb": FB}, [1, 3, 8, 8], [1, 4])
    return src, _export(_MaxNet(dims), (1, 3, 8, 8), tmp / "max.pt2")


def test_reducemax_axes_as_if_finding_is_patched_on_the_exported_graph(tmp_path):
    src, tgt = _max_pair(tmp_path, (-2, -2))
    _, f = _checked(src, tgt, "CL305", "global_max")
    assert f.evidence["direction"] == "as-if"
    ep = torch.export.load(f.repair.output)  # the reloaded file reduces H, then W
    dims = [n.args[1] for n in ep.graph.nodes if "max" in str(n.target)]
    assert dims == [-2, -1]
    net = _MaxNet((-2, -1)).eval()
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(ep.module()(x), net(x), atol=1e-5)


def test_reducemax_faithful_twin_is_clean(tmp_path):
    _clean(*_max_pair(tmp_path, (-2, -1)), tmp_path)


# --------------------------------------------------------------------------- ConvTranspose
class _DeconvNet(torch.nn.Module):
    def __init__(self, padding: int, output_padding: int):
        super().__init__()
        self.deconv = torch.nn.ConvTranspose2d(4, 3, 3, stride=2, padding=padding,
                                               output_padding=output_padding)
        self.deconv.weight.data = torch.from_numpy(DW)
        self.deconv.bias.data = torch.from_numpy(DB)

    def forward(self, x):
        return torch.sigmoid(self.deconv(x))


def _deconv_pair(tmp: Path, padding: int, output_padding: int) -> tuple:
    """ConvTranspose 4x4 -> output_shape 8x8 (stride 2, kernel 3): ONNX crops a row and a column
    at the start; torch says it as padding 1 with output_padding 1, onnx2torch as neither."""
    src = onnx_source(tmp / "deconv.onnx", [
        helper.make_node("ConvTranspose", ["x", "w", "b"], ["d"], name="deconv",
                         kernel_shape=[3, 3], strides=[2, 2], output_shape=[8, 8]),
        helper.make_node("Sigmoid", ["d"], ["y"], name="out_act")],
        {"w": DW, "b": DB}, [1, 4, 4, 4], [1, 3, 8, 8])
    return src, _export(_DeconvNet(padding, output_padding), (1, 4, 4, 4), tmp / "deconv.pt2")


def test_ignored_output_shape_names_output_padding_and_is_patched(tmp_path):
    src, tgt = _deconv_pair(tmp_path, 0, 0)
    r, f = _checked(src, tgt, "CL305", "deconv")
    assert f.stage == "hyperparameters" and "output_padding" in (f.hyperparameter or "")
    assert f.evidence["changes"] == [["pads", [1, 1, 1, 1]], ["output_padding", [1, 1]]]
    assert r.extra["localization"]["culprit"]["stage"] == "hyperparameters"
    ep = torch.export.load(f.repair.output)
    conv = next(n for n in ep.graph.nodes if "conv_transpose" in str(n.target))
    assert list(conv.args[4:6]) == [[1, 1], [1, 1]]


def test_deconv_faithful_twin_is_clean(tmp_path):
    _clean(*_deconv_pair(tmp_path, 1, 1), tmp_path)


# --------------------------------------------------------------------------- gather crash
class _GatherNet(torch.nn.Module):
    def __init__(self, idx: np.ndarray):
        super().__init__()
        self.proj = Fn(lambda t, w: t @ w)
        self.pick = Fn(lambda t, i: torch.gather(t, 2, i))
        self.initializers = torch.nn.Module()
        self.initializers.register_buffer("w", torch.from_numpy(W8))
        self.initializers.register_buffer("idx", torch.from_numpy(idx))

    def forward(self, x):
        return torch.tanh(self.pick(self.proj(x, self.initializers.w), self.initializers.idx))


def _gather_pair(tmp: Path, idx: np.ndarray) -> tuple:
    src = onnx_source(tmp / "gather.onnx", [
        helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
        helper.make_node("GatherElements", ["h", "idx"], ["g"], name="pick", axis=2),
        helper.make_node("Tanh", ["g"], ["y"], name="act")],
        {"w": W8, "idx": IDX}, [1, 6, 8], [1, 6, 4])
    # export traces on fake tensors: torch.gather's bounds are only checked when it runs
    return src, _export(_GatherNet(idx), (1, 6, 8), tmp / "gather.pt2")


def test_gather_crash_on_negative_indices_is_wrapped_in_the_exported_graph(tmp_path):
    src, tgt = _gather_pair(tmp_path, IDX)
    r, f = _checked(src, tgt, "CL402", "pick")
    assert r.verdict == "crash" and Path(f.repair.output).name == "gather.repaired.pt2"


def test_gather_faithful_twin_is_clean(tmp_path):
    _clean(*_gather_pair(tmp_path, np.where(IDX < 0, IDX + 8, IDX)), tmp_path)
