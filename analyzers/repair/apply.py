"""Writing a repair plan into a new file: one patcher per target format.

A patcher takes the target's path, the :class:`~convlint.analyzers.repair.plan.Plan` and the
output path, writes the patched copy (never over the target) and returns the keys of the steps it
carried out (a tensor name, a node name, a graph edit's key); a step it cannot express in its
format is left out, and the pipeline reports that finding's repair as not possible in place.
``KINDS`` says which kinds of patch each format's patcher takes, and ``ACTIONS`` which graph
edits where it takes only some, so planning skips the rest. ``GATHER_WRAPS`` is the crash repair
of a torch target (``crash.py``), per format.
"""

from __future__ import annotations

from collections.abc import Callable

Patcher = Callable[[str, object, str], list]


def _onnx(target: str, plan, out: str) -> list:
    from convlint.analyzers.repair.weights import patch_onnx

    return patch_onnx(target, plan.patches, out, plan.edits, plan.graph_edits)


def _tflite(target: str, plan, out: str) -> list:
    from convlint.analyzers.repair.tflite_patch import patch

    return patch(target, plan, out)


def _torchscript(target: str, plan, out: str) -> list:
    from convlint.analyzers.repair.torchscript import patch_torchscript

    return patch_torchscript(target, plan, out)


def _exported(target: str, plan, out: str) -> list:
    from convlint.analyzers.repair.exported import patch_exported

    return patch_exported(target, plan, out)


PATCHERS: dict[str, Patcher] = {"onnx": _onnx, "tflite": _tflite, "torchscript": _torchscript,
                                "torch-exported": _exported}

# target format -> the kinds of patch its patcher takes
KINDS: dict[str, tuple[str, ...]] = {
    "onnx": ("patch-weights", "patch-attributes", "patch-graph"),
    "tflite": ("patch-weights", "patch-attributes", "patch-graph"),
    "torchscript": ("patch-weights", "patch-attributes", "patch-graph"),
    "torch-exported": ("patch-weights", "patch-attributes", "patch-graph"),
}


# target format -> the graph-edit actions its patcher makes, where it makes only some
ACTIONS: dict[str, tuple[str, ...]] = {"tflite": ("semantics",)}
# target format -> attribute edits its patcher cannot make (a TFLite op's builtin options and
# scalar constants are set; its geometry is in the tensors' shapes, a clip has no bounds)
NO_ATTRIBUTES: dict[str, tuple[str, ...]] = {"tflite": ("strides", "dilations", "pads", "clip")}


def _gather_torchscript(path: str, modules: list) -> tuple[list, bytes | None]:
    from convlint.analyzers.repair.torchscript import wrap_gather

    return wrap_gather(path, modules)


def _gather_exported(path: str, modules: list) -> tuple[list, bytes | None]:
    from convlint.analyzers.repair.exported import wrap_gather

    return wrap_gather(path, modules)


# target format -> the graph edit that wraps the negative indices of the named modules' gathers
# (the crash repair of a torch target): the modules done and the new file's bytes
GATHER_WRAPS: dict[str, Callable[[str, list], tuple[list, bytes | None]]] = {
    "torchscript": _gather_torchscript, "torch-exported": _gather_exported}


def patchable(target_format: str, kind: str) -> bool:
    return kind in KINDS.get(target_format, ())


def takes(target_format: str, step) -> bool:
    """Whether the format's patcher can carry out a planned step (its kind, its graph edits)."""
    actions = ACTIONS.get(target_format)
    refused = NO_ATTRIBUTES.get(target_format, ())
    return patchable(target_format, step.kind) and (
        actions is None or all(e.action in actions for e in step.graph_edits)) and not any(
        e.attribute in refused for e in step.edits)


def apply(target_format: str, target: str, plan, out: str) -> set:
    """Write ``plan`` into ``out``; the keys of the steps done."""
    return set(PATCHERS[target_format](target, plan, out))
