"""Clean twin on a real pre-trained model: MediaPipe's `face_detection_short_range.tflite`
(BlazeFace short-range face detector),
as shipped in the `mediapipe==0.10.14` wheel
(mediapipe/modules/face_detection/face_detection_short_range.tflite), converted
TFLite -> ONNX by tf2onnx 1.17 (`python -m tf2onnx.convert --tflite ... --opset 17`).
Model: 128x128 RGB in [-1, 1]; 896 anchors x 16 box/keypoint regressors and 1 score; 0.2 MB.
Measured here: onnxruntime matches tf.lite.Interpreter within float noise on seeded inputs in [-1,
1]:
6.1e-05 abs on regressors of scale ~140 (1.4e-06 relative).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-mediapipe-face-detection-tf2onnx",
    "kind": "clean",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/tflite_utils.py: graphs_from_tflite (model: mediapipe==0.10.14 wheel, "
    "mediapipe/modules/face_detection/face_detection_short_range.tflite)",
    "summary": "MediaPipe's pre-trained BlazeFace short-range face detector, shipped in the "
    "mediapipe 0.10.14 wheel, converted TFLite -> ONNX by tf2onnx at opset 17.",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": [],
    "model": {
        "package": "mediapipe==0.10.14",
        "member": "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "sha256": "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
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
        out, "mediapipe", "0.10.14", m["member"], m["sha256"], "face_detection_short_range.tflite"
    )
    tgt = out / "face_detection_short_range.onnx"
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
