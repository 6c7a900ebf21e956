"""Stage 1: the conversion tool. Identify the converter and its version from the target's
metadata, and the settings its output betrays (quantized or float16 storage)."""

from __future__ import annotations


def identify(meta: dict) -> dict:
    """``{"converter", "version", "evidence"}`` from a target's metadata, as its runner read it
    (``converter``, ``converter_version``, ``conversion_evidence``)."""
    return {"converter": meta.get("converter"), "version": meta.get("converter_version"),
            "evidence": meta.get("conversion_evidence") or {}}
