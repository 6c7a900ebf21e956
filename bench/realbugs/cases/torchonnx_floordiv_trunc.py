"""torch.onnx.export (TorchScript exporter, dynamo=False) exports `//` (aten::floor_divide) as
truncating division.

torch/onnx/_internal/torchscript_exporter/symbolic_opset9.py `floor_divide` still maps
aten::floor_divide to
`_trunc_divide` ("Deprecated behavior, floor_divide actually truncates"), although torch's `//`
floors since 1.13
(pytorch#78442, pytorch#44692). A posterize layer `x // step * step` therefore rounds negative
values towards zero
in ONNX: every negative input that is not a multiple of `step` comes out one step too high.
"""
import pathlib

CASE = {
    "id": "torchonnx-floordiv-trunc",
    "kind": "fault",
    "converter": "torch.onnx.export (dynamo=False, opset 17), torch 2.13.0",
    "upstream": "https://github.com/pytorch/pytorch/issues/78442 ; "
    "torch/onnx/_internal/torchscript_exporter/symbolic_opset9.py:floor_divide (returns "
    "_trunc_divide)",
    "summary": "the TorchScript exporter turns x // step (floor division) into Div+truncation, "
    "so the posterize layer rounds negative values towards zero instead of down",
    "layer": ["quant"],
    # graph (README, "Culprit stages"): the exported graph lacks the Floor the source's `//` needs
    "stage": "graph",
    # re-export with dynamo=True gives Div+Floor; or patch the Cast/trunc chain into Floor
    "repairable": True,
    "env": "main",
    "diff_args": [],
}


def _model():
    import torch
    import torch.nn as nn

    class Posterize(nn.Module):
        def __init__(self, step):
            super().__init__()
            self.step = step

        def forward(self, x):
            return x // self.step * self.step

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.quant = Posterize(0.25)
            self.head = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            return self.head(self.quant(self.conv(x)))

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
