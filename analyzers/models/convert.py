"""Re-running converters, for stage 1 (which setting introduces or removes a fault).

Framework code, imported lazily like the runners. Each function returns the converted bytes.
"""

from __future__ import annotations

from convlint.analyzers.models.tf_common import import_tf


def tflite_from(source, *, optimize: bool = False, float16: bool = False) -> bytes:
    """Convert a Keras or SavedModel runner's model with TFLiteConverter."""
    tf = import_tf()
    source.load()
    if source.format == "keras":
        conv = tf.lite.TFLiteConverter.from_keras_model(source.model)
    elif source.format == "savedmodel":
        conv = tf.lite.TFLiteConverter.from_saved_model(source.path)
    else:
        raise ValueError(f"TFLiteConverter cannot convert a {source.format} model")
    if optimize or float16:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    if float16:
        conv.target_spec.supported_types = [tf.float16]
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):  # the converter prints its export summary
        return conv.convert()


TFLITE_SETTINGS = {
    "float": {"optimize": False, "float16": False},
    "Optimize.DEFAULT": {"optimize": True, "float16": False},
    "Optimize.DEFAULT + float16": {"optimize": True, "float16": True},
}
TFLITE_CALLS = {
    "float": "converter = tf.lite.TFLiteConverter.from_keras_model(model)  # no optimizations",
    "Optimize.DEFAULT": "converter.optimizations = [tf.lite.Optimize.DEFAULT]",
    "Optimize.DEFAULT + float16": "converter.optimizations = [tf.lite.Optimize.DEFAULT]; "
                                  "converter.target_spec.supported_types = [tf.float16]",
}
