"""Writing a repair plan into a new file: one patcher per target format.

A patcher takes the target's path, the :class:`~convlint.analyzers.repair.plan.Plan` and the
output path, writes the patched copy (never over the target) and returns the keys of the steps it
carried out (a tensor name, a node name, a graph edit's key); a step it cannot express in its
format is left out, and the pipeline reports that finding's repair as not possible in place.
``KINDS`` says which kinds of patch each format's patcher takes, so planning skips the rest.
"""

from __future__ import annotations

from collections.abc import Callable

Patcher = Callable[[str, object, str], list]


def _onnx(target: str, plan, out: str) -> list:
    from convlint.analyzers.repair.weights import patch_onnx

    return patch_onnx(target, plan.patches, out, plan.edits, plan.graph_edits)


def _tflite(target: str, plan, out: str) -> list:
    from convlint.analyzers.repair.weights import patch_tflite

    return patch_tflite(target, plan.patches, out)


PATCHERS: dict[str, Patcher] = {"onnx": _onnx, "tflite": _tflite}

# target format -> the kinds of patch its patcher takes
KINDS: dict[str, tuple[str, ...]] = {
    "onnx": ("patch-weights", "patch-attributes", "patch-graph"),
    "tflite": ("patch-weights",),
}


def patchable(target_format: str, kind: str) -> bool:
    return kind in KINDS.get(target_format, ())


def apply(target_format: str, target: str, plan, out: str) -> set:
    """Write ``plan`` into ``out``; the keys of the steps done."""
    return set(PATCHERS[target_format](target, plan, out))
