"""torch.onnx.export (TorchScript exporter, dynamo=False) loses repeated indices of
index_put(accumulate=True).

torch/onnx/_internal/torchscript_exporter/symbolic_opset11.py `index_put` exports accumulate=True as
Add(self, ScatterND(zeros, index, values)) with ScatterND's default reduction "none": when an index
repeats, only one
of its values survives instead of their sum (pytorch#61034, closed yet still reproduced with torch
2.13; the same
exporter refuses index_add with duplicates, pytorch#111159). A segment-sum layer over rows is
silently wrong.
"""
import pathlib

CASE = {
    "id": "torchonnx-index-put-accumulate",
    "kind": "fault",
    "converter": "torch.onnx.export (dynamo=False, opset 17), torch 2.13.0",
    "upstream": "https://github.com/pytorch/pytorch/issues/61034 ; "
    "torch/onnx/_internal/torchscript_exporter/symbolic_opset11.py:index_put (ScatterND "
    "without reduction='add')",
    "summary": "the TorchScript exporter writes index_put(accumulate=True) as "
    "ScatterND(reduction='none') on zeros plus Add, so rows scattered to the same slot "
    "overwrite each other instead of summing",
    "layer": ["segsum"],
    "stage": "hyperparameters",
    # set ScatterND reduction='add' (opset >= 16), or re-export with dynamo=True
    "repairable": True,
    "env": "main",
    "diff_args": [],
}


def _model():
    import torch
    import torch.nn as nn

    class SegmentSum(nn.Module):
        """Sums the 8 rows (tokens) of each sample into 4 slots (fixed, repeated index)."""

        def __init__(self):
            super().__init__()
            self.register_buffer("index", torch.tensor([0, 0, 1, 2, 2, 2, 3, 1]))

        def forward(self, x):  # x: [8, C]
            return torch.zeros(4, x.shape[1], dtype=x.dtype).index_put(
                (self.index,), x, accumulate=True
            )

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 10)
            self.segsum = SegmentSum()
            self.head = nn.Linear(10, 3)

        def forward(self, x):
            return self.head(self.segsum(torch.tanh(self.fc(x))))

    torch.manual_seed(0)
    return Net().eval()


def build(out: pathlib.Path):
    import torch
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = _model()
    x = torch.rand(8, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1
    src = out / "source.pt2"
    tgt = out / "target.onnx"
    with torch.no_grad():
        torch.export.save(torch.export.export(model, (x,)), str(src))
        torch.onnx.export(model, (x,), str(tgt), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
    return src, tgt
