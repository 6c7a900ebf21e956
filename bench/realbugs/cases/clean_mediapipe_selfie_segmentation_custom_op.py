"""A real pre-trained model that tf2onnx 1.17 cannot convert faithfully: MediaPipe's selfie
segmentation
(`mediapipe==0.10.14` wheel, mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite, 0.25
MB).

Its last op ("segment") is MediaPipe's custom TFLite op `Convolution2DTransposeBias` (a transposed
convolution with a fused bias; TF Lite's XNNPACK delegate runs it, so tf.lite.Interpreter runs the
model).
tf2onnx has no handler for it (tflite_handlers/ only knows TFL builtins): it logs "Unsupported ops"
and
writes a `TFL_Convolution2DTransposeBias` node; onnxruntime rejects the model (INVALID_GRAPH: No Op
registered).
Open upstream: onnx/tensorflow-onnx#2389 (and #1779 for the same model).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-mediapipe-selfie-segmentation-tf2onnx-custom-op",
    "kind": "fault",
    "converter": "tf2onnx 1.17",
    "upstream": "https://github.com/onnx/tensorflow-onnx/issues/2389 (also #1779: "
    "Convolution2DTransposeBias of MediaPipe's selfie_segmentation.tflite is not converted)",
    "summary": "The custom TFLite op Convolution2DTransposeBias of MediaPipe's pre-trained "
    "selfie segmentation model is copied into the ONNX graph as an unknown "
    "`TFL_Convolution2DTransposeBias` node, so onnxruntime cannot load the converted model.",
    # the TFLite op is named after its output tensor, "segment" (the model's output)
    "layer": ["segment"],
    "stage": "conversion-tool",
    # the op is ConvTranspose (stride 2) + bias: expressible as an ONNX ConvTranspose
    "repairable": True,
    "env": "main",
    "diff_args": [],
    "model": {
        "package": "mediapipe==0.10.14",
        "member": "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite",
        "sha256": "9ee168ec7c8f2a16c56fe8e1cfbc514974cbbb7e434051b455635f1bd1462f5c",
    },
}


def build(out: pathlib.Path):
    import os
    import subprocess
    import sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m = CASE["model"]
    src = _wheel_member(
        out, "mediapipe", "0.10.14", m["member"], m["sha256"], "selfie_segmentation.tflite"
    )
    tgt = out / "selfie_segmentation.onnx"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tf2onnx.convert",
            "--tflite",
            str(src),
            "--output",
            str(tgt),
            "--opset",
            "17",
        ],
        check=True,
        capture_output=True,
    )
    return src, tgt
