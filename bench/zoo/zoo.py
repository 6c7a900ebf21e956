"""A model zoo for `make bench-zoo`, generated (random weights, 64x64 inputs, 10 classes) into
bench/zoo/.zoo/ (git-ignored), and the project config that lists it in four glob lines.

- keras/<arch>/model.keras from keras.applications (``weights=None``), converted by tf2onnx
  (model.onnx) and by TFLiteConverter (model.tflite);
- torch/<arch>/model.pt2 (torch.export) of torchvision-like definitions written here in plain
  torch (torchvision does not install beside torch 2.13 CPU), converted by torch.onnx.export
  (model.onnx) and by OpenVINO's convert_model (model.xml + .bin, float32).

    python bench/zoo/zoo.py [OUT]     # prints the number of pairs
"""

from __future__ import annotations

import sys
from pathlib import Path

HW = 64
CLASSES = 10
KERAS = {  # name -> (constructor, keyword arguments)
    "mobilenet": ("MobileNet", {"alpha": 0.25}),
    "mobilenetv2": ("MobileNetV2", {"alpha": 0.35}),
    "mobilenetv3small": ("MobileNetV3Small", {"minimalistic": True}),
    "mobilenetv3large": ("MobileNetV3Large", {"minimalistic": True}),
    "efficientnetb0": ("EfficientNetB0", {}),
    "densenet121": ("DenseNet121", {}),
    "resnet50": ("ResNet50", {}),
}
CONFIG = """\
# the zoo in four lines: one pair per source the glob matches, the target beside it; 8 random
# inputs a pair instead of 32 (a Keras source runs each input eagerly, layer by layer: the inputs,
# not the executor, would dominate the time, and the bench measures the executor)
pairs = [{source = "keras/*/model.keras", target = "{dir}/model.onnx", num-inputs = 8},
         {source = "keras/*/model.keras", target = "{dir}/model.tflite", num-inputs = 8},
         {source = "torch/*/model.pt2", target = "{dir}/model.onnx", num-inputs = 8},
         {source = "torch/*/model.pt2", target = "{dir}/model.xml", num-inputs = 8}]
cache-dir = ".cache"
"""


def torch_models() -> dict:
    """Small torchvision-like classifiers (same ideas, fewer channels), as ``name -> module``."""
    import torch
    from torch import nn

    def cbr(i, o, k=3, s=1, g=1):
        return nn.Sequential(
            nn.Conv2d(i, o, k, s, k // 2, groups=g, bias=False), nn.BatchNorm2d(o), nn.ReLU()
        )

    def head(c):
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, CLASSES))

    class Basic(nn.Module):  # ResNet's basic block
        def __init__(self, i, o, s):
            super().__init__()
            self.body = nn.Sequential(
                cbr(i, o, 3, s), nn.Conv2d(o, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o)
            )
            self.skip = (
                nn.Identity()
                if s == 1 and i == o
                else nn.Sequential(nn.Conv2d(i, o, 1, s), nn.BatchNorm2d(o))
            )

        def forward(self, x):
            return torch.relu(self.body(x) + self.skip(x))

    class Inverted(nn.Module):  # MobileNetV2's inverted residual
        def __init__(self, i, o, s, e=4):
            super().__init__()
            self.res = s == 1 and i == o
            self.body = nn.Sequential(
                cbr(i, i * e, 1),
                cbr(i * e, i * e, 3, s, i * e),
                nn.Conv2d(i * e, o, 1, bias=False),
                nn.BatchNorm2d(o),
            )

        def forward(self, x):
            y = self.body(x)
            return x + y if self.res else y

    class Fire(nn.Module):  # SqueezeNet
        def __init__(self, i, sq, ex):
            super().__init__()
            self.sq, self.e1, self.e3 = (
                nn.Conv2d(i, sq, 1),
                nn.Conv2d(sq, ex, 1),
                nn.Conv2d(sq, ex, 3, padding=1),
            )

        def forward(self, x):
            s = torch.relu(self.sq(x))
            return torch.cat([torch.relu(self.e1(s)), torch.relu(self.e3(s))], 1)

    class Shuffle(nn.Module):  # ShuffleNetV2's unit (split, branch, concat, channel shuffle)
        def __init__(self, c):
            super().__init__()
            h = c // 2
            self.branch = nn.Sequential(
                cbr(h, h, 1),
                nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False),
                nn.BatchNorm2d(h),
                cbr(h, h, 1),
            )

        def forward(self, x):
            a, b = x.chunk(2, 1)
            y = torch.cat([a, self.branch(b)], 1)
            n, c, hh, ww = y.shape
            return y.view(n, 2, c // 2, hh, ww).transpose(1, 2).reshape(n, c, hh, ww)

    class Dense(nn.Module):  # DenseNet's layer: concatenate the new features
        def __init__(self, i, g):
            super().__init__()
            self.f = nn.Sequential(
                nn.BatchNorm2d(i), nn.ReLU(), nn.Conv2d(i, g, 3, padding=1, bias=False)
            )

        def forward(self, x):
            return torch.cat([x, self.f(x)], 1)

    class Inception(nn.Module):  # GoogLeNet's block
        def __init__(self, i):
            super().__init__()
            self.b = nn.ModuleList(
                [
                    cbr(i, 16, 1),
                    nn.Sequential(cbr(i, 8, 1), cbr(8, 16, 3)),
                    nn.Sequential(cbr(i, 4, 1), cbr(4, 8, 5)),
                    nn.Sequential(nn.MaxPool2d(3, 1, 1), cbr(i, 8, 1)),
                ]
            )

        def forward(self, x):
            return torch.cat([b(x) for b in self.b], 1)

    class SE(nn.Module):  # MobileNetV3's squeeze-excite with hardswish
        def __init__(self, c):
            super().__init__()
            self.fc = nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                nn.Conv2d(c, c // 4, 1),
                nn.ReLU(),
                nn.Conv2d(c // 4, c, 1),
                nn.Hardsigmoid(),
            )

        def forward(self, x):
            return nn.functional.hardswish(x * self.fc(x))

    return {
        "resnet_like": nn.Sequential(
            cbr(3, 16, 3, 2), Basic(16, 16, 1), Basic(16, 32, 2), Basic(32, 64, 2), head(64)
        ),
        "mobilenetv2_like": nn.Sequential(
            cbr(3, 16, 3, 2),
            Inverted(16, 16, 1),
            Inverted(16, 24, 2),
            Inverted(24, 24, 1),
            Inverted(24, 32, 2),
            head(32),
        ),
        "vgg_like": nn.Sequential(
            cbr(3, 16),
            nn.MaxPool2d(2),
            cbr(16, 32),
            nn.MaxPool2d(2),
            cbr(32, 64),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 8 * 8, 64),
            nn.ReLU(),
            nn.Linear(64, CLASSES),
        ),
        "alexnet_like": nn.Sequential(
            nn.Conv2d(3, 32, 7, 2, 3),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(32, 64, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, 1),
            nn.Conv2d(64, 64, 3, padding=1),
            nn.ReLU(),
            head(64),
        ),
        "squeezenet_like": nn.Sequential(
            nn.Conv2d(3, 32, 3, 2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(32, 8, 32),
            Fire(64, 16, 32),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            Fire(64, 16, 64),
            nn.Conv2d(128, CLASSES, 1),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        ),
        "shufflenet_like": nn.Sequential(
            cbr(3, 32, 3, 2),
            nn.MaxPool2d(3, 2, 1),
            Shuffle(32),
            Shuffle(32),
            cbr(32, 64, 3, 2),
            Shuffle(64),
            head(64),
        ),
        "densenet_like": nn.Sequential(
            cbr(3, 16, 3, 2),
            Dense(16, 8),
            Dense(24, 8),
            Dense(32, 8),
            nn.AvgPool2d(2),
            Dense(40, 8),
            head(48),
        ),
        "googlenet_like": nn.Sequential(
            cbr(3, 32, 3, 2), nn.MaxPool2d(3, 2, 1), Inception(32), Inception(48), head(48)
        ),
        "mobilenetv3_like": nn.Sequential(
            cbr(3, 16, 3, 2), Inverted(16, 24, 2), SE(24), Inverted(24, 24, 1), SE(24), head(24)
        ),
    }


def make(out: Path) -> int:
    """Write the zoo and its convlint.toml under ``out`` (models already there are kept); the
    number of pairs."""
    import os
    import warnings

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import openvino as ov
    import tensorflow as tf
    import tf2onnx
    import torch

    tf.get_logger().setLevel("ERROR")
    n = 0
    for name, (ctor, kw) in KERAS.items():
        d = out / "keras" / name
        n += 2
        if (d / "model.tflite").exists():
            continue
        d.mkdir(parents=True, exist_ok=True)
        keras.utils.set_random_seed(0)
        km = getattr(keras.applications, ctor)(
            weights=None, input_shape=(HW, HW, 3), classes=CLASSES, **kw
        )
        km.save(d / "model.keras")
        sig = (tf.TensorSpec((None, HW, HW, 3), tf.float32, name="image"),)
        tf2onnx.convert.from_keras(
            km, input_signature=sig, opset=17, output_path=str(d / "model.onnx")
        )
        (d / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(km).convert())
    torch.manual_seed(0)
    for name, tm in torch_models().items():
        d = out / "torch" / name
        n += 2
        if (d / "model.xml").exists():
            continue
        d.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(0)
        tm = tm.eval()
        x = torch.randn(1, 3, HW, HW)
        torch.export.save(torch.export.export(tm, (x,)), d / "model.pt2")
        torch.onnx.export(
            tm,
            (x,),
            d / "model.onnx",
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
        )
        ov.save_model(
            ov.convert_model(tm, example_input=x), d / "model.xml", compress_to_fp16=False
        )
    (out / "convlint.toml").write_text(CONFIG)
    return n


def constant_models(out: Path, tol: float = 1e-6) -> list:
    """The zoo's models whose output does not depend on their input (the same output, within
    ``tol``, for three random inputs through onnxruntime): their pairs pass trivially and cannot
    show a regression (bench/RESULTS.md: 5 of the Keras models with random weights)."""
    import numpy as np
    import onnxruntime as ort

    rng, found = np.random.default_rng(0), []
    for f in sorted(out.glob("*/*/model.onnx")):
        s = ort.InferenceSession(str(f), providers=["CPUExecutionProvider"])
        i = s.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        ys = [
            s.run(None, {i.name: rng.uniform(-1, 1, shape).astype(np.float32)})[0] for _ in range(3)
        ]
        if max(float(np.abs(y - ys[0]).max()) for y in ys[1:]) <= tol:
            found.append(f.parent.relative_to(out).as_posix())
    return found


if __name__ == "__main__":
    where = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / ".zoo"
    print(make(where))
    for name in constant_models(where):
        print(
            f"warning: {name}: the output does not depend on the input (its pairs pass trivially)"
        )
