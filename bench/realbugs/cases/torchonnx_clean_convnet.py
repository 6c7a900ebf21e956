"""Clean twin: a small conv net (Conv, BatchNorm, Hardswish, MaxPool, 2x nearest upsample,
PixelShuffle, GELU-tanh,
LayerNorm, Linear) exported by torch.onnx.export with the TorchScript exporter (dynamo=False, opset
17).
Every op here has a faithful ONNX lowering; onnxruntime reproduces the .pt2 source to float noise (<
1e-5).
"""
import pathlib

CASE = {
    "id": "torchonnx-clean-convnet",
    "kind": "clean",
    "converter": "torch.onnx.export (dynamo=False, opset 17), torch 2.13.0",
    "upstream": "torch/onnx/_internal/torchscript_exporter/symbolic_opset9.py (faithful lowerings)",
    "summary": "a conv net with BatchNorm, Hardswish, MaxPool, nearest upsample, PixelShuffle, "
    "tanh-GELU and LayerNorm exported to ONNX opset 17 by the TorchScript exporter",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": [],
}


def _model():
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(8)
            self.act1 = nn.Hardswish()
            self.pool = nn.MaxPool2d(2)
            self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
            self.up = nn.Upsample(scale_factor=2, mode="nearest")
            self.shuffle = nn.PixelShuffle(2)
            self.conv3 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
            self.act3 = nn.GELU(approximate="tanh")
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.norm = nn.LayerNorm(8)
            self.fc = nn.Linear(8, 5)

        def forward(self, x):
            x = self.pool(self.act1(self.bn1(self.conv1(x))))
            x = self.shuffle(self.up(self.conv2(x)))
            x = self.gap(self.act3(self.conv3(x))).flatten(1)
            return self.fc(self.norm(x))

    torch.manual_seed(0)
    m = Net()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        m.bn1.running_mean.uniform_(-0.5, 0.5)
        m.bn1.running_var.uniform_(0.5, 2.0)
    return m.eval()


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
