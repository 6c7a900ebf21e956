"""The chain a model took into TVM Relax, and whether that evidence is independent of a converter.

A route is recorded as ``"step -> step -> relax.frontend.X"`` (``Runner.tvm_route``), e.g.
``"tf2onnx(opset 17, float) -> relax.frontend.onnx"``. A Keras source reaches Relax only through a
converter; when the target of the pair was made by that same converter, the TVM run of the source
inherits the converter's faults and is no independent second opinion.
"""

from __future__ import annotations

# converter names as the target's metadata identifies them (localize.tool.identify) and as routes
# spell them
KNOWN = ("tf2onnx", "TFLiteConverter", "torch.onnx.export", "torch.export", "onnx2tf",
         "onnx2torch", "litert_torch", "openvino")


def chain(route: str | None) -> list[str]:
    """The steps of a route, in order."""
    return [s.strip() for s in (route or "").split("->") if s.strip()]


def converters(route: str | None) -> set[str]:
    """The converters a route passes through (not the Relax frontend, not the file format)."""
    out = set()
    for step in chain(route):
        name = step.split("(")[0].strip()
        if name in KNOWN:
            out.add(name)
    return out


def shared(route: str | None, producer: str | None) -> set[str]:
    """The converters a route shares with the converter that produced the other model."""
    return converters(route) & {producer} if producer else set()
