"""torch.onnx.export (dynamo=True, onnxscript torch_lib) exports scatter_reduce(reduce="mean") as a
plain scatter.

onnxscript/function_libs/torch_lib/ops/core.py `aten_scatter_reduce` maps torch's "mean" to ONNX
ScatterElements
reduction "none" ('mean' doesn't support in ONNX 1.14 definition) without computing any mean: each
output slot gets
the last scattered value instead of the mean of self and all values scattered there. A segment-mean
pooling layer
(`torch.zeros(..).scatter_reduce(1, index, x, "mean")`) is silently wrong. (The TorchScript exporter
refuses "mean".)
Needs an environment with onnxscript (env "torchonnx": torch==2.13.0, onnxscript 0.7.2, onnx,
onnxruntime).
"""
import pathlib

CASE = {
    "id": "torchonnx-dynamo-scatter-mean",
    "kind": "fault",
    "converter": "torch.onnx.export (dynamo=True, opset 18), torch 2.13.0 + onnxscript 0.7.2",
    "upstream": "onnxscript/function_libs/torch_lib/ops/core.py:aten_scatter_reduce (reduce "
    "'mean' -> reduction 'none')",
    "summary": "the dynamo exporter writes scatter_reduce(reduce='mean') as "
    "ScatterElements(reduction='none'), which keeps one scattered value per slot instead of "
    "the mean",
    "layer": ["pool"],
    "stage": "hyperparameters",
    "repairable": True,  # patch: ScatterElements(add) of values and of ones (plus self) then Div
    "env": "torchonnx",
    "diff_args": [],
}


def _model():
    import torch
    import torch.nn as nn

    class SegmentMean(nn.Module):
        """Mean-pools 16 feature columns into 4 segments (index fixed)."""

        def __init__(self):
            super().__init__()
            self.register_buffer(
                "index", torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 2, 3, 3, 0, 1, 2, 3])
            )

        def forward(self, x):
            idx = self.index.expand(x.shape[0], -1)
            return torch.zeros(x.shape[0], 4, dtype=x.dtype).scatter_reduce(
                1, idx, x, reduce="mean", include_self=True
            )

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 16)
            self.pool = SegmentMean()
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            return self.head(self.pool(torch.relu(self.fc(x))))

    torch.manual_seed(0)
    return Net().eval()


def build(out: pathlib.Path):
    import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    import torch
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = _model()
    x = torch.rand(4, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    src = out / "source.pt2"
    tgt = out / "target.onnx"
    with torch.no_grad():
        torch.export.save(torch.export.export(model, (x,)), str(src))
        torch.onnx.export(model, (x,), str(tgt), dynamo=True, opset_version=18, external_data=False,
                          input_names=["input"], output_names=["output"])
    return src, tgt
