"""Stage 1: the conversion tool. Identify the converter and its version from the target's
metadata, and the settings its output betrays (quantized or float16 storage)."""

from __future__ import annotations


def identify(target_format: str, meta: dict) -> dict:
    """``{"converter", "version", "evidence"}`` from a target's metadata."""
    prod = (meta.get("producer_name") or "").lower()
    out = {"converter": None, "version": None, "evidence": {}}
    if target_format == "onnx":
        out["converter"] = {"tf2onnx": "tf2onnx", "pytorch": "torch.onnx.export",
                            "onnx2torch": "onnx2torch", "keras2onnx": "keras2onnx",
                            "skl2onnx": "skl2onnx"}.get(prod, meta.get("producer_name") or None)
        out["version"] = next(iter((meta.get("producer_version") or "").split()), None)
        out["evidence"] = {"opset": meta.get("opset"), "ir_version": meta.get("ir_version")}
    elif target_format == "tflite":
        out["converter"] = "TFLiteConverter" if "mlir" in (meta.get("description") or "").lower() \
            else "tflite"
        md = meta.get("metadata") or {}
        out["version"] = md.get("min_runtime_version")
        dtypes = meta.get("tensor_dtypes") or {}
        out["evidence"] = {"tensor_dtypes": dtypes,
                           "quantized_storage": any(d in dtypes for d in ("int8", "uint8", "int16")),
                           "float16_storage": "float16" in dtypes}
    return out
