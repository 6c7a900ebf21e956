"""Shared TensorFlow helpers: a quiet import, and the documented float route into TVM.

Keras and SavedModel have no TVM frontend of their own, so they reach TVM through a conversion,
which is itself recorded (``Runner.tvm_route``), because a conversion can add faults:

1. ``tf2onnx.convert.from_function`` at opset 17 on the model's inference function with static
   input shapes, then ``relax.frontend.onnx``;
2. if that fails (e.g. exact GELU, which tf2onnx 1.17 turns into an invalid ``Erfc`` node): an
   unoptimized float ``TFLiteConverter`` conversion, then ``relax.frontend.tflite``.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def import_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging

    import tensorflow as tf

    tf.get_logger().setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except Exception:  # pragma: no cover - no absl: TF's own logger was quieted above
        log.debug("absl logging not quieted", exc_info=True)
    return tf


def tf_function_to_tvm_builders(fn, specs, input_shapes: dict):
    """``[(route, builder), ...]`` for a callable ``fn(*tensors)`` over ``specs``, in order."""

    def signature():
        tf = import_tf()
        return tuple(
            tf.TensorSpec(tuple(input_shapes[s.name]), s.dtype, name=s.name) for s in specs
        )

    def via_onnx():
        import tf2onnx
        from tvm.relax.frontend.onnx import from_onnx

        tf = import_tf()
        sig = signature()
        func = tf.function(fn, input_signature=sig)
        proto, _ = tf2onnx.convert.from_function(func, input_signature=sig, opset=17)
        import onnx

        _bake_captured_constants(proto, func.get_concrete_function())
        onnx.checker.check_model(proto)
        names = [i.name for i in proto.graph.input]
        if len(names) != len(specs):
            raise RuntimeError(
                f"the ONNX graph takes {len(names)} inputs, the model {len(specs)}: {names}"
            )
        shapes = {n: list(input_shapes[s.name]) for n, s in zip(names, specs, strict=True)}
        return from_onnx(proto, shape_dict=shapes)

    def via_tflite():
        import tflite
        from tvm.relax.frontend.tflite import from_tflite

        tf = import_tf()
        func = tf.function(fn, input_signature=signature())
        conv = tf.lite.TFLiteConverter.from_concrete_functions([func.get_concrete_function()])
        buf = conv.convert()
        return from_tflite(tflite.Model.GetRootAsModel(buf, 0))

    return [("tf2onnx(opset 17, float) -> relax.frontend.onnx", via_onnx),
            ("TFLiteConverter(float, no optimizations) -> relax.frontend.tflite", via_tflite)]


def _bake_captured_constants(proto, concrete) -> None:
    """tf2onnx's ``from_function`` makes every tensor the function captures that is not a variable
    an input of the ONNX graph (tf2onnx 1.17 lists the function's non-resource inputs, captures
    included): e.g. the mean and variance of a Keras 3 ``Normalization`` layer, captured as
    constants (EfficientNet's stem), become ``.../Sub/y:0`` and ``.../Sqrt/x:0`` inputs that the
    model itself does not have. Their values are known; they become initializers."""
    from onnx import numpy_helper

    values = {}
    for external, internal in concrete.graph.captures:
        if external.dtype.name == "resource":
            continue
        try:
            values[internal.name] = external.numpy()
        except Exception:  # noqa: BLE001 - a symbolic capture: left as it is
            continue
    keep = [i for i in proto.graph.input if i.name not in values]
    for i in proto.graph.input:
        if i.name in values:
            proto.graph.initializer.append(numpy_helper.from_array(values[i.name], i.name))
    del proto.graph.input[:]
    proto.graph.input.extend(keep)


def first_working(builders, avoid: frozenset = frozenset()):
    """A builder that tries ``[(route, builder)]`` in order and returns ``(route, IRModule)``
    from the first that succeeds. Routes through a converter in ``avoid`` (the one that made the
    other model of the pair) are tried last: their evidence would not be independent."""
    from convlint.analyzers.differential.routes import converters

    builders = sorted(builders, key=lambda rb: bool(converters(rb[0]) & set(avoid)))

    def build():
        errors = []
        for route, b in builders:
            try:
                return route, b()
            except Exception as e:  # try the next route
                errors.append(f"{route}: {' '.join(str(e).split())[:300]}")
        raise RuntimeError("; ".join(errors))

    return build
