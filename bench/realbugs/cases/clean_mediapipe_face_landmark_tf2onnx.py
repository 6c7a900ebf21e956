"""Clean twin on a real pre-trained model: MediaPipe's `face_landmark.tflite` (face mesh landmark
model),
as shipped in the `mediapipe==0.10.14` wheel (mediapipe/modules/face_landmark/face_landmark.tflite),
converted
TFLite -> ONNX by tf2onnx 1.17 (`python -m tf2onnx.convert --tflite ... --opset 17`).
Model: 192x192 in [-1, 1]; 468 3-D landmarks in pixels and a face-presence logit; 1.2 MB.
Measured here: onnxruntime matches tf.lite.Interpreter within float noise on seeded inputs in [-1,
1]:
1.7e-04 abs on landmarks of scale 160 (1e-06 relative).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-mediapipe-face-landmark-tf2onnx",
    "kind": "clean",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/tflite_utils.py: graphs_from_tflite (model: mediapipe==0.10.14 wheel, "
    "mediapipe/modules/face_landmark/face_landmark.tflite)",
    "summary": "MediaPipe's pre-trained face mesh landmark model, shipped in the mediapipe "
    "0.10.14 wheel, converted TFLite -> ONNX by tf2onnx at opset 17.",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": [],
    "model": {
        "package": "mediapipe==0.10.14",
        "member": "mediapipe/modules/face_landmark/face_landmark.tflite",
        "sha256": "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
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
        out, "mediapipe", "0.10.14", m["member"], m["sha256"], "face_landmark.tflite"
    )
    tgt = out / "face_landmark.onnx"
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
