"""Clean twin on a real pre-trained model: MediaPipe's `iris_landmark.tflite` (iris landmark model),
as shipped in the `mediapipe==0.10.14` wheel (mediapipe/modules/iris_landmark/iris_landmark.tflite),
converted
TFLite -> ONNX by tf2onnx 1.17 (`python -m tf2onnx.convert --tflite ... --opset 17`).
Model: 64x64 eye crop in [-1, 1]; 71 eye-contour and 5 iris 3-D landmarks; 2.6 MB.
Measured here: onnxruntime matches tf.lite.Interpreter within float noise on seeded inputs in [-1,
1]:
4.6e-05 abs on outputs of scale ~50 (9e-07 relative).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-mediapipe-iris-landmark-tf2onnx",
    "kind": "clean",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/tflite_utils.py: graphs_from_tflite (model: mediapipe==0.10.14 wheel, "
    "mediapipe/modules/iris_landmark/iris_landmark.tflite)",
    "summary": "MediaPipe's pre-trained iris landmark model, shipped in the mediapipe 0.10.14 "
    "wheel, converted TFLite -> ONNX by tf2onnx at opset 17.",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": [],
    "model": {
        "package": "mediapipe==0.10.14",
        "member": "mediapipe/modules/iris_landmark/iris_landmark.tflite",
        "sha256": "d1744d2a09c25f501d39eba4faff47e53ecca8852c5ce19bce8eeac39357521f",
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
        out, "mediapipe", "0.10.14", m["member"], m["sha256"], "iris_landmark.tflite"
    )
    tgt = out / "iris_landmark.onnx"
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
