"""torch.onnx.export (TorchScript exporter, dynamo=False) drops Softplus's `threshold`.

torch/onnx/_internal/torchscript_exporter/symbolic_opset9.py `softplus(g, self, beta, threshold)`
never reads
`threshold`: it emits Softplus(x*beta)/beta, whereas torch returns x itself wherever beta*x >
threshold.
ONNX Softplus has no threshold (onnx/onnx#5226), so a Softplus(beta=2, threshold=0.5) is exported as
a smooth
softplus and differs by up to log(1+e^-t)/beta near the threshold.
"""
import pathlib

CASE = {
    "id": "torchonnx-softplus-threshold",
    "kind": "fault",
    "converter": "torch.onnx.export (dynamo=False, opset 17), torch 2.13.0",
    "upstream": "torch/onnx/_internal/torchscript_exporter/symbolic_opset9.py:softplus "
    "(threshold argument ignored); https://github.com/onnx/onnx/issues/5226",
    "summary": "the TorchScript exporter exports Softplus(beta=2, threshold=0.5) as "
    "Softplus(2x)/2 without the linear branch above the threshold",
    "layer": ["act"],
    "stage": "hyperparameters",
    # re-export with dynamo=True (Where(beta*x > t, x, ...)), or patch in a Where
    "repairable": True,
    "env": "main",
    "diff_args": [],
}


def _model():
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.act = nn.Softplus(beta=2.0, threshold=0.5)
            self.head = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            return self.head(self.act(self.conv(x)))

    torch.manual_seed(0)
    return Net().eval()


def build(out: pathlib.Path):
    import torch
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = _model()
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    src = out / "source.pt2"
    tgt = out / "target.onnx"
    with torch.no_grad():
        torch.export.save(torch.export.export(model, (x,)), str(src))
        torch.onnx.export(model, (x,), str(tgt), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["output"])
    return src, tgt
