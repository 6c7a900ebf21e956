"""Clean twin on a real pre-trained model: MediaPipe's `palm_detection_lite.tflite` (palm detector,
lite),
as shipped in the `mediapipe==0.10.14` wheel
(mediapipe/modules/palm_detection/palm_detection_lite.tflite), converted
TFLite -> ONNX by tf2onnx 1.17 (`python -m tf2onnx.convert --tflite ... --opset 17`).
Model: 192x192 in [-1, 1]; 2016 anchors x 18 box/keypoint regressors and 1 score; 2.0 MB. Large
regressor values (up to ~500) make its float noise larger than 1e-4 in absolute terms.
Measured here: onnxruntime matches tf.lite.Interpreter within float noise on seeded inputs in [-1,
1]:
6.7e-04 abs on regressors of scale 481 (1.4e-06 relative).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-mediapipe-palm-detection-tf2onnx",
    "kind": "clean",
    "converter": "tf2onnx 1.17",
    "upstream": "tf2onnx/tflite_utils.py: graphs_from_tflite (model: mediapipe==0.10.14 wheel, "
    "mediapipe/modules/palm_detection/palm_detection_lite.tflite)",
    "summary": "MediaPipe's pre-trained palm detector, lite, shipped in the mediapipe 0.10.14 "
    "wheel, converted TFLite -> ONNX by tf2onnx at opset 17.",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": [],
    "model": {
        "package": "mediapipe==0.10.14",
        "member": "mediapipe/modules/palm_detection/palm_detection_lite.tflite",
        "sha256": "e9a4aaddf90dda56a87235303cf00e4c2d3fb28725f68fd88772997dac905c18",
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
        out, "mediapipe", "0.10.14", m["member"], m["sha256"], "palm_detection_lite.tflite"
    )
    tgt = out / "palm_detection_lite.onnx"
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
