"""Clean twin on a real pre-trained model: facenet-pytorch's PNet, with the weights shipped in the
`facenet-pytorch==2.6.0` wheel (facenet_pytorch/data/pnet.pt, a state dict) loaded into the wheel's
own
architecture class (facenet_pytorch/models/mtcnn.py, run from the wheel without installing the
package).
MTCNN's fully convolutional proposal network PNet (RGB image in [-1, 1] -> per-cell box offsets and
face probability; conv/PReLU, 2x2 max-pooling with ceil_mode=True on an odd-sized 29x37 input,
softmax over channels; 28 kB)
Source: torch.export ExportedProgram (.pt2) at input 1x3x29x37; target:
torch.onnx.export(dynamo=False, opset 17).
Measured here on seeded inputs in [-1, 1]: onnxruntime matches torch within float noise, max abs
6e-07 (outputs up to 1.0).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-facenet-pnet-torchonnx",
    "kind": "clean",
    "converter": "torch.onnx.export 2.13 (TorchScript exporter, dynamo=False)",
    "upstream": "torch/onnx/utils.py: export (model: facenet-pytorch==2.6.0 wheel, "
    "facenet_pytorch/data/pnet.pt)",
    "summary": "facenet-pytorch's pre-trained MTCNN PNet (weights from the facenet-pytorch 2.6.0 "
    "wheel) exported torch -> ONNX by torch.onnx.export(dynamo=False) at opset 17.",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": [],
    "model": {
        "package": "facenet-pytorch==2.6.0",
        "member": "facenet_pytorch/data/pnet.pt",
        "sha256": "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
        "input_shape": [1, 3, 29, 37],
    },
}


def _architecture(out: pathlib.Path):
    """The wheel's facenet_pytorch/models/mtcnn.py as a module (without its import of the detection
    helpers, which pull in torchvision; the PNet class does not use them)."""
    import types
    _wheel_member(out, "facenet-pytorch", "2.6.0", "facenet_pytorch/models/mtcnn.py",
                  "29a965963337313068ab335cbc48f4a4facc2e5857756ef7b9ab11e5c1d6b620", "mtcnn.py")
    code = (
        (out / "mtcnn.py")
        .read_text()
        .replace("from .utils.detect_face import detect_face, extract_face", "")
    )
    mod = types.ModuleType("facenet_pytorch_mtcnn")
    exec(compile(code, str(out / "mtcnn.py"), "exec"), mod.__dict__)
    (out / "mtcnn.py").unlink()
    return mod


def build(out: pathlib.Path):
    import torch
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m = CASE["model"]
    weights = _wheel_member(
        out, "facenet-pytorch", "2.6.0", m["member"], m["sha256"], "pnet_state_dict.pt"
    )
    net = _architecture(out).PNet(pretrained=False)
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    net.eval()
    weights.unlink()
    x = (torch.rand(tuple(m["input_shape"]), generator=torch.Generator().manual_seed(0)) * 2 - 1)
    src = out / "pnet.pt2"
    torch.export.save(torch.export.export(net, (x,)), str(src))
    tgt = out / "pnet.onnx"
    torch.onnx.export(net, (x,), str(tgt), dynamo=False, opset_version=17, input_names=["x"])
    return src, tgt
