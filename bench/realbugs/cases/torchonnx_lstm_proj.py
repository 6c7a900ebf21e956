"""torch.onnx.export (dynamo=True, onnxscript torch_lib) drops the projection of an LSTM with
proj_size.

onnxscript/function_libs/torch_lib/ops/core.py `aten_lstm` builds one ONNX LSTM per layer from
W_ih/W_hh/b_ih/b_hh
only: it never reads the projection weight W_hr, and takes hidden_size from initial_h, whose last
dim is proj_size.
The ONNX LSTM gets R of shape [1, 4*hidden, proj] with initial_c [1, B, hidden] and
hidden_size=proj: onnxruntime
fails to run it ("Input initial_c must have shape {1,B,proj}"). (The TorchScript exporter refuses
projections.)
Needs an environment with onnxscript (env "torchonnx": torch==2.13.0, onnxscript 0.7.2, onnx,
onnxruntime).
"""
import pathlib

CASE = {
    "id": "torchonnx-dynamo-lstm-proj",
    "kind": "fault",
    "converter": "torch.onnx.export (dynamo=True, opset 18), torch 2.13.0 + onnxscript 0.7.2",
    "upstream": "onnxscript/function_libs/torch_lib/ops/core.py:aten_lstm (ignores proj_size / "
    "W_hr weights)",
    "summary": "the dynamo exporter writes nn.LSTM(proj_size=3) as a plain ONNX LSTM without the "
    "projection and with inconsistent state shapes, which onnxruntime fails to run",
    "layer": ["lstm"],
    "stage": "conversion-tool",
    # ONNX LSTM has no projection: it needs a rewrite into a Loop/Scan; no exporter produces one
    "repairable": False,
    "env": "torchonnx",
    "diff_args": [],
}


def _model():
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(6, 8)
            self.lstm = nn.LSTM(8, 12, batch_first=True, proj_size=4)
            self.head = nn.Linear(4, 3)

        def forward(self, x):
            y, _ = self.lstm(torch.tanh(self.embed(x)))
            return self.head(y)

    torch.manual_seed(0)
    return Net().eval()


def build(out: pathlib.Path):
    import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    import torch
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = _model()
    x = torch.rand(2, 5, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1
    src = out / "source.pt2"
    tgt = out / "target.onnx"
    with torch.no_grad():
        torch.export.save(torch.export.export(model, (x,)), str(src))
        torch.onnx.export(model, (x,), str(tgt), dynamo=True, opset_version=18, external_data=False,
                          input_names=["input"], output_names=["output"])
    return src, tgt
