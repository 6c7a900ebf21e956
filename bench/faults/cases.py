"""Generate the fault benchmark's cases: clean pairs and faulty twins, with ground truth.

Architectures: the three fixture blocks (MobileNet-, ResNet-, Inception-like) and a small
transformer-like block (Linear, LayerNorm, tanh-GELU, residual). Conversion paths:
Keras -> ONNX (tf2onnx), torch -> ONNX (torch.onnx), TFLite -> ONNX (tf2onnx), and
Keras -> TFLite (TFLiteConverter) for the converter's own weight faults.

The ground truth is declared here from how each architecture was built (the first kernel, the
last 3x3 convolution, the first clipped activation, the first tensor over TFLiteConverter's
1024-element quantization threshold), not read back from convlint's alignment.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "fixtures"))
MODELS = ROOT / "fixtures" / "models"

# ground truth: (architecture, which layer a fault hits) -> the source layers (Keras and torch
# names) a correct report may name; an op inserted between a layer and its consumers may be
# reported at either
LAYERS = {
    ("mobilenet", "after-first-activation"): ("expand_conv", "expand.0"),
    ("resnet", "after-first-activation"): ("res_conv1", "conv1"),
    ("inception", "after-first-activation"): (
        "b1_conv",
        "b2_conv",
        "b3_pool",
        "b1.0",
        "b2.0",
        "b3.0",
    ),
    ("mobilenet", "first-activation"): ("stem_relu6", "stem.2"),
    ("resnet", "first-activation"): ("stem_relu", "stem.2"),
    ("inception", "first-activation"): ("stem_conv", "stem.1"),
    ("mobilenet", "after-unactivated-kernel"): (
        "project_conv",
        "project_bn",
        "gap",
        "project.0",
        "project.1",
        "pool",
    ),
    # torch's residual add is a functional call in forward(): convlint names it forward.add
    ("resnet", "after-unactivated-kernel"): (
        "res_conv2",
        "res_bn2",
        "res_add",
        "conv2",
        "bn2",
        "forward.add",
    ),
    ("inception", "after-unactivated-kernel"): ("logits", "fc", "StatefulPartitionedCall_1:0"),
    ("mobilenet", "first-kernel"): ("stem_conv", "stem.0"),
    ("resnet", "first-kernel"): ("stem_conv", "stem.0"),
    ("inception", "first-kernel"): ("stem_conv", "stem.0"),
    ("transformer", "first-kernel"): (None, "fc_in"),
    ("mobilenet", "last-3x3"): ("dw_conv", "dw.0"),
    ("resnet", "last-3x3"): ("res_conv2", "conv2"),
    ("inception", "last-3x3"): ("mix_conv", "mix.0"),
    ("mobilenet", "first-clip"): ("stem_relu6", "stem.2"),
    ("mobilenet", "first-over-1024"): ("project_conv", None),
    ("resnet", "first-over-1024"): ("res_conv1", None),
    ("inception", "first-over-1024"): ("b2_conv", None),
}
# injected fault -> (category, the layer it hits, the stage that must explain it)
INJECTED = {
    "corrupted-tensor": ("weights", "first-kernel", "parameters"),
    "fp16-weights": ("weights", "first-kernel", "parameters"),
    "transposed-kernel": ("weights", "last-3x3", "parameters"),
    "padding-shifted": ("hyperparameters", "last-3x3", "hyperparameters"),
    "dilation-changed": ("hyperparameters", "last-3x3", "hyperparameters"),
    "clip-bound-changed": ("hyperparameters", "first-clip", "hyperparameters"),
    "extra-transpose": ("graph", "after-first-activation", "graph"),
    "extra-pad": ("graph", "after-first-activation", "graph"),
    "missing-activation": ("graph", "first-activation", "graph"),
    "extra-activation": ("graph", "after-unactivated-kernel", "graph"),
    "input-layout": ("input", "first-kernel", "input"),
    "input-scaling": ("input", "first-kernel", "input"),
}
# ONNX paths: (source file, clean target) per architecture
ONNX_PATHS = {
    "keras->onnx": lambda a: (f"{a}.keras", f"{a}.tf2onnx.onnx"),
    "torch->onnx": lambda a: (f"{a}.pt2", f"{a}.torch.onnx"),
    "tflite->onnx": lambda a: (f"{a}.tflite", f"{a}.tflite2onnx.onnx"),
}
ARCHS = ("mobilenet", "resnet", "inception")


def transformer(out: Path) -> None:
    """The transformer-like block in torch, saved as .pt2 and exported to ONNX."""
    import torch
    from torch import nn

    torch.manual_seed(5)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc_in = nn.Linear(32, 64)
            self.ln1 = nn.LayerNorm(64)
            self.act = nn.GELU(approximate="tanh")
            self.fc_out = nn.Linear(64, 32)
            self.ln2 = nn.LayerNorm(32)
            self.head = nn.Linear(32, 10)

        def forward(self, x):
            y = self.fc_out(self.act(self.ln1(self.fc_in(x))))
            return self.head(self.ln2(x + y).mean(1))

    m = Block().eval()
    x = torch.randn(1, 16, 32)
    torch.export.save(torch.export.export(m, (x,)), out / "transformer.pt2")
    torch.onnx.export(m, (x,), out / "transformer.torch.onnx", dynamo=False, opset_version=17,
                      input_names=["tokens"], output_names=["logits"])
    # the GELU-approximation fault: the same weights exported with exact GELU
    m.act.approximate = "none"
    torch.onnx.export(m, (x,), out / "transformer.gelu-exact.onnx", dynamo=False, opset_version=17,
                      input_names=["tokens"], output_names=["logits"])


def _epsilon_case(out: Path, arch: str) -> dict:
    """Keras -> ONNX where the first BatchNorm was converted with epsilon 1e-5 (PyTorch's
    default) instead of the model's 1e-3, as a hand-written port does."""
    import keras
    import tensorflow as tf
    import tf2onnx

    m = keras.saving.load_model(out / f"{arch}.keras")
    bn = next(x for x in m.layers if isinstance(x, keras.layers.BatchNormalization))
    bn.epsilon = 1e-5
    tgt = f"{arch}.tf2onnx.bn-epsilon.onnx"
    tf2onnx.convert.from_keras(
        m,
        input_signature=(tf.TensorSpec((None, 32, 32, 3), tf.float32, name="image"),),
        opset=17,
        output_path=str(out / tgt),
    )
    return {"id": f"{arch}/keras->onnx/bn-epsilon", "arch": arch, "path": "keras->onnx",
            "source": f"{arch}.keras", "target": tgt, "fault": "bn-epsilon",
            "category": "hyperparameters", "stage": "hyperparameters", "rule": "CL303",
            "layers": [bn.name], "target_node": None}


def generate(out: Path) -> list[dict]:
    """Write every case under ``out``; return the case list (also saved as cases.json)."""
    import faults

    out.mkdir(parents=True, exist_ok=True)
    transformer(out)
    for f in MODELS.iterdir():
        if f.is_file() and not f.name.startswith("manifest"):
            shutil.copy(f, out / f.name)
    cases = []
    paths = [(a, p, *fn(a)) for a in ARCHS for p, fn in ONNX_PATHS.items()]
    paths.append(("transformer", "torch->onnx", "transformer.pt2", "transformer.torch.onnx"))
    for arch, path, src, clean in paths:
        cases.append({"id": f"{arch}/{path}/clean", "arch": arch, "path": path, "source": src,
                      "target": clean, "fault": None})
        for fault, (cat, where, stage) in INJECTED.items():
            if (arch, where) not in LAYERS:
                continue
            tgt = f"{Path(clean).stem}.{fault}.onnx"
            try:
                info = faults.inject(str(out / clean), fault, str(out / tgt))
            except (IndexError, ValueError, StopIteration):
                continue  # the architecture has no such layer
            cases.append({"id": f"{arch}/{path}/{fault}", "arch": arch, "path": path,
                          "source": src, "target": tgt, "fault": fault, "category": cat,
                          "stage": stage, "rule": info["expect_rule"],
                          "layers": [n for n in LAYERS[(arch, where)] if n],
                          "target_node": info["node"]})
    cases.append({"id": "transformer/torch->onnx/gelu-approximation", "arch": "transformer",
                  "path": "torch->onnx", "source": "transformer.pt2",
                  "target": "transformer.gelu-exact.onnx", "fault": "gelu-approximation",
                  "category": "hyperparameters", "stage": "hyperparameters", "rule": "CL304",
                  "layers": ["act"], "target_node": None})
    for arch in ("mobilenet", "resnet"):  # a weight port that ignores the BN epsilon
        cases.append(_epsilon_case(out, arch))
    for arch in ARCHS:  # the converter's own weight fault, repaired by re-conversion
        names = [n for n in LAYERS[(arch, "first-over-1024")] if n]
        cases.append({"id": f"{arch}/keras->tflite/clean", "arch": arch, "path": "keras->tflite",
                      "source": f"{arch}.keras", "target": f"{arch}.tflite", "fault": None})
        cases.append({"id": f"{arch}/keras->tflite/dynamic-range-int8", "arch": arch,
                      "path": "keras->tflite", "source": f"{arch}.keras",
                      "target": f"{arch}.dynint8.tflite", "fault": "dynamic-range-int8",
                      "category": "weights", "stage": "parameters", "rule": "CL201",
                      "layers": names, "target_node": None})
    (out / "cases.json").write_text(json.dumps(cases, indent=1))
    return cases
