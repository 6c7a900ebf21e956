"""Clean twin on a real pre-trained model: MediaPipe's `hand_landmark_lite.tflite` (hand landmark
model, lite),
as shipped in the `mediapipe==0.10.14` wheel
(mediapipe/modules/hand_landmark/hand_landmark_lite.tflite), converted
TFLite -> ONNX by tf2onnx 1.17 (`python -m tf2onnx.convert --tflite ... --opset 17`).
Model: 224x224 in [-1, 1]; 21 3-D landmarks in pixels, hand presence, handedness, 21 world landmarks
in metres; 2.1 MB. Its outputs have very different scales (181 vs 0.004).
Measured here: onnxruntime matches tf.lite.Interpreter within float noise on seeded inputs in [-1,
1]:
1.1e-04 abs on landmarks of scale ~180; 6e-09 abs on the presence score of scale 0.004 (1.3e-05
relative).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-mediapipe-hand-landmark-tf2onnx",
    "kind": "clean",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/tflite_utils.py: graphs_from_tflite (model: mediapipe==0.10.14 wheel, "
    "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite)",
    "summary": "MediaPipe's pre-trained hand landmark model, lite, shipped in the mediapipe "
    "0.10.14 wheel, converted TFLite -> ONNX by tf2onnx at opset 17.",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": [],
    "model": {
        "package": "mediapipe==0.10.14",
        "member": "mediapipe/modules/hand_landmark/hand_landmark_lite.tflite",
        "sha256": "048edd3645c9bf7397d19a9f6e3a42957d6e414c9bea6598030a2e9b624156e6",
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
        out, "mediapipe", "0.10.14", m["member"], m["sha256"], "hand_landmark_lite.tflite"
    )
    tgt = out / "hand_landmark_lite.onnx"
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
