"""onnx2torch 1.5.15 converts ONNX GatherElements to torch.gather without normalizing negative
indices.

The ONNX spec allows GatherElements indices in [-s, s-1] along `axis` (negative counts from the end;
onnxruntime
accepts them). onnx2torch/node_converters/gather.py, OnnxGatherElements.forward, calls
torch.gather(input, dim=axis, index=upcast_indices(indices)) directly; torch.gather rejects negative
indices, so the
converted module (saved with torch.export, which traces with fake tensors and does not check bounds)
fails at run time
with "index -1 is out of bounds for dimension 2".

Environment: its own venv (CASE["env"] = "onnx2torch"):
  pip install torch==2.13.0 onnx onnxruntime numpy && pip install --no-deps onnx2torch==1.5.15
(onnx2torch imports torchvision only for NMS/RoiAlign; build() stubs it when it is missing).
"""
import pathlib

from _common import _stub_torchvision  # noqa: E402 (shared by the cases)

CASE = {
    "id": "onnx2torch-gatherelements-negative-indices",
    "kind": "fault",
    "converter": "onnx2torch 1.5.15",
    "upstream": "onnx2torch/node_converters/gather.py, OnnxGatherElements.forward: "
    "torch.gather(..., index=upcast_indices(indices)) with no wrap of negative indices -- "
    "https://github.com/ENOT-AutoDL/onnx2torch/blob/main/onnx2torch/node_converters/gather.py",
    "summary": "GatherElements with negative (from-the-end) constant indices becomes "
    "torch.gather, which fails at run time on negative indices.",
    "layer": ["pick"],
    # conversion-tool (README, "Culprit stages"): the target runtime refuses the node the
    # converter wrote (was "graph")
    "stage": "conversion-tool",
    "repairable": True,
    "env": "onnx2torch",
    "diff_args": [],
}


def build(out: pathlib.Path):
    import numpy as np
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    _stub_torchvision()
    from onnx2torch import convert

    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    # per row, pick 4 of the 8 projected features; negative entries count from the end (valid ONNX)
    idx = rng.integers(-8, 8, size=(1, 6, 4)).astype(np.int64)
    idx[0, 0, 0] = -1
    inits = [
        numpy_helper.from_array((rng.standard_normal((8, 8)) * 0.4).astype(np.float32), "proj_w"),
        numpy_helper.from_array(idx, "pick_idx"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "proj_w"], ["h"], name="proj"),
        helper.make_node("GatherElements", ["h", "pick_idx"], ["g"], name="pick", axis=2),
        helper.make_node("Tanh", ["g"], ["y"], name="act"),
    ]
    graph = helper.make_graph(
        nodes, "gather_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 6, 4])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    src = out / "source.onnx"
    onnx.save(model, str(src))

    module = convert(model).eval()
    x = torch.from_numpy(rng.uniform(-1, 1, (1, 6, 8)).astype(np.float32))
    ep = torch.export.export(module, (x,))
    tgt = out / "target.pt2"
    torch.export.save(ep, str(tgt))
    return src, tgt
