"""Clean twin on a real pre-trained model: Silero VAD's streaming-sequence ONNX model, as shipped in
the
`silero-vad==6.2.3` wheel (silero_vad/data/silero_vad_16k_sequence.onnx, 1.2 MB, opset 16): STFT as
a
Conv, a conv encoder, an LSTM over the windows and a sigmoid speech probability per 576-sample
window
(inputs: audio `input` [windows, 576] in [-1, 1], LSTM state `h`, `c` [1, 1, 128]); the model is
rewritten by onnxruntime's offline basic graph optimizations (constant folding, redundant-node
elimination; SessionOptions.optimized_model_filepath), which keep standard ONNX ops only.
Measured here on seeded inputs in [-1, 1]: onnxruntime gives identical outputs (max abs 0).
"""
import pathlib

from _common import _wheel_member  # noqa: E402 (shared by the cases)

CASE = {
    "id": "clean-silero-vad-ort-optimized",
    "kind": "clean",
    "converter": "onnxruntime offline graph optimization (ORT_ENABLE_BASIC)",
    "upstream": "onnxruntime SessionOptions.optimized_model_filepath with "
    "GraphOptimizationLevel.ORT_ENABLE_BASIC (model: silero-vad==6.2.3 wheel, "
    "silero_vad/data/silero_vad_16k_sequence.onnx)",
    "summary": "Silero VAD's pre-trained sequence model (ONNX with an LSTM, from the silero-vad "
    "6.2.3 wheel) rewritten by onnxruntime's offline basic graph optimizations.",
    "layer": [],
    "stage": None,
    "repairable": False,
    "env": "main",
    "diff_args": ["--input-shape", "input:4x576"],  # the window count is dynamic in the model
    "model": {
        "package": "silero-vad==6.2.3",
        "member": "silero_vad/data/silero_vad_16k_sequence.onnx",
        "sha256": "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85",
    },
}


def build(out: pathlib.Path):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    m = CASE["model"]
    src = _wheel_member(
        out, "silero-vad", "6.2.3", m["member"], m["sha256"], "silero_vad_16k_sequence.onnx"
    )
    tgt = out / "silero_vad_16k_sequence_ortbasic.onnx"
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = str(tgt)
    ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
    return src, tgt
