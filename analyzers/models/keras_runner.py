"""Keras 3 (`.keras`, `.h5`) on TensorFlow. Loaded with ``safe_mode=True`` unless the user opts
in."""

from __future__ import annotations

from typing import cast

import numpy as np

from convlint.analyzers.models.base import LayerInfo, Runner, TensorSpec, layout_hint
from convlint.analyzers.models.tf_common import (
    first_working,
    import_tf,
    tf_function_to_tvm_builders,
)


def _shape(t) -> tuple:
    return tuple(None if d is None else int(d) for d in t.shape)


def _lambda_layers(path: str) -> list:
    """Names of Lambda layers in a saved Keras model's config, read without deserializing it."""
    import json
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                config = json.loads(z.read("config.json"))
        else:
            import h5py

            with h5py.File(path, "r") as f:
                raw = f.attrs.get("model_config")
                config = (
                    json.loads(raw if isinstance(raw, str) else raw.decode())
                    if raw is not None
                    else {}
                )
    except Exception:
        return []  # the loader itself will say what is wrong with the file
    from convlint.analyzers.models.keras_config import config_layers

    return [cfg.get("name", "?") for cls, cfg in config_layers(config) if cls == "Lambda"]


def _producers(layer) -> list:
    """Names of the layers whose outputs feed ``layer`` (its first call in the model)."""
    names = []
    for node in getattr(layer, "_inbound_nodes", [])[:1]:
        for t in getattr(node, "input_tensors", []) or []:
            hist = getattr(t, "_keras_history", None)
            if hist is not None and getattr(hist, "operation", None) is not None:
                names.append(hist.operation.name)
    return names


class KerasRunner(Runner):
    format = "keras"
    backend = "tf"
    # the per-layer model holds the output layers: one run gives the outputs and every layer's
    capture_runs_outputs = True

    def __init__(self, path, *, unsafe_load: bool = False):
        super().__init__(path)
        self.unsafe_load = unsafe_load

    def _load_impl(self) -> None:
        import_tf()
        import keras

        with open(self.path, "rb") as fh:
            head = fh.read(8)
        if self.path.endswith(".keras") and head[:2] != b"PK":
            raise ValueError("a .keras file is a zip archive, and this one is not")
        if self.path.endswith(".h5") and head != b"\x89HDF\r\n\x1a\n":
            raise ValueError("an .h5 file is an HDF5 file, and this one is not")
        if head == b"\x89HDF\r\n\x1a\n":  # a corrupt HDF5 file can hang the native reader
            from convlint.analyzers.models.hdf5_check import preflight

            preflight(self.path)
        if not self.unsafe_load:
            lambdas = _lambda_layers(self.path)
            if lambdas:
                from convlint.analyzers.errors import ModelLoadError

                raise ModelLoadError(
                    f"{self.path}: refused: the model has Lambda layer(s) {', '.join(lambdas)}, "
                    f"whose Python code Keras would run on load; convlint loads Keras models in "
                    f"safe mode",
                    rule="CL004",
                    path=self.path,
                    hint="if you trust this file, pass --unsafe-load (never for files from the "
                    "internet)",
                )
        # load_model is unannotated (pyright infers ``object | None``); a model file holds a Model
        self.model = cast("keras.Model", keras.saving.load_model(
            self.path, compile=False, safe_mode=not self.unsafe_load))
        if not getattr(self.model, "inputs", None):
            raise ValueError("the model has no defined inputs (a subclassed or unbuilt model); "
                             "save a functional or Sequential model with an Input")
        self._probe = None
        self._call = None

    def _input_specs_impl(self):
        return [TensorSpec(t.name, _shape(t), str(np.dtype(t.dtype)), layout_hint(_shape(t)))
                for t in self.model.inputs]

    def _output_names(self) -> list:
        names = list(getattr(self.model, "output_names", None) or [])
        return (
            names if len(names) == len(self.model.outputs) else [t.name for t in self.model.outputs]
        )

    def _output_specs_impl(self):
        return [TensorSpec(n, _shape(t), str(np.dtype(t.dtype)), layout_hint(_shape(t)))
                for n, t in zip(self._output_names(), self.model.outputs, strict=True)]

    def _ordered(self, inputs: dict):
        """Inputs as the model was built to take them: a dict by input name."""
        names = [s.name for s in self.input_specs()]
        vals = list(inputs.values())
        return {n: inputs[n] if n in inputs else vals[i] for i, n in enumerate(names)}

    def _traced(self):
        """The model's inference call traced once into a graph (``tf.function``), as
        ``model.predict`` runs it: the same layers, without eager mode's per-op Python dispatch
        (about 10x faster on a MobileNetV2; traced again only for a new input shape)."""
        if self._call is None:
            import tensorflow as tf

            model = self.model
            self._call = tf.function(lambda xs: model(xs, training=False), reduce_retracing=True)
        return self._call

    def _run_impl(self, inputs):
        out = self._traced()(self._ordered(inputs))
        outs = out if isinstance(out, (list, tuple)) else [out]
        if isinstance(out, dict):
            outs = list(out.values())
        return {n: np.asarray(o) for n, o in zip(self._output_names(), outs, strict=True)}

    def _layers_impl(self):
        out = []
        for layer in self.model.layers:
            weights = {w.path if hasattr(w, "path") else w.name: np.asarray(w.numpy())
                       for w in layer.weights}
            try:
                cfg = layer.get_config()
            except Exception:
                cfg = {}
            attrs = {
                k: v
                for k, v in cfg.items()
                if isinstance(v, (int, float, str, bool, list, tuple, type(None)))
            }
            out.append(LayerInfo(layer.name, type(layer).__name__, weights, attrs,
                                 _producers(layer), [layer.name]))
        return out

    def _intermediates_impl(self, inputs):
        import keras

        if self._probe is None:
            names, outs = [], []
            for layer in self.model.layers:
                if type(layer).__name__ == "InputLayer":
                    continue
                o = layer.output
                flat = o if isinstance(o, (list, tuple)) else [o]
                for j, t in enumerate(flat):
                    names.append(layer.name if len(flat) == 1 else f"{layer.name}:{j}")
                    outs.append(t)
            self._probe = (names, keras.Model(self.model.inputs, outs))
        names, probe = self._probe
        vals = probe(list(self._ordered(inputs).values()), training=False)
        vals = vals if isinstance(vals, (list, tuple)) else [vals]
        return {n: np.asarray(v) for n, v in zip(names, vals, strict=True)}

    def _tvm_import_impl(self, input_shapes):
        model = self.model
        specs = self.input_specs()

        def fn(*xs):
            return model(xs[0] if len(xs) == 1 else list(xs), training=False)

        return first_working(tf_function_to_tvm_builders(fn, specs, input_shapes), self.tvm_avoid)
