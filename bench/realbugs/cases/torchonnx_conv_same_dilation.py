"""torch.onnx.export (TorchScript exporter, dynamo=False) writes Conv(padding="same", dilation>1) as
auto_pad=SAME_UPPER.

torch/onnx/_internal/torchscript_exporter/symbolic_opset9.py `_convolution_mode` maps padding="same"
to
`auto_pad_s="SAME_UPPER"` whatever the dilation, and onnxruntime's Conv kernel refuses auto_pad
SAME_* with
dilation ("Dilation not supported for AutoPadType::SAME_UPPER or AutoPadType::SAME_LOWER"): the
model loads but
every run fails. Explicit pads (as the dynamo exporter writes) run fine.
"""
import pathlib

CASE = {
    "id": "torchonnx-conv-same-dilation",
    "kind": "fault",
    "converter": "torch.onnx.export (dynamo=False, opset 17), torch 2.13.0",
    "upstream": "torch/onnx/_internal/torchscript_exporter/symbolic_opset9.py:_convolution_mode "
    "(padding='same' -> auto_pad SAME_UPPER with dilation); onnxruntime "
    "core/providers/cpu/nn/conv_attributes.h",
    "summary": "a dilated Conv2d(padding='same') is exported with auto_pad=SAME_UPPER and "
    "dilations=2, which onnxruntime refuses to run",
    "layer": ["dil_conv"],
    "stage": "conversion-tool",
    # replace auto_pad by explicit pads (3,3,3,3), or re-export with dynamo=True
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
            self.stem = nn.Conv2d(3, 8, 3, padding=1)
            self.act = nn.ReLU()
            self.dil_conv = nn.Conv2d(8, 8, 3, padding="same", dilation=3)
            self.head = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            return self.head(self.dil_conv(self.act(self.stem(x))))

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
