"""Named, serializable run results (Polygraphy's ``comparator/struct.py`` ``RunResults``).

A ``RunResults`` holds what the differential check ran, by name: ``source/native``,
``source/tvm``, ``target/native``, ``target/tvm`` (each a list of per-sample
``{output name: array}``), the inputs each model was fed, and small JSON facts. A saved
localization capture (``save_capture``/``load_capture``) holds the capture the stages read
(layer tables, per-layer outputs) beside the check's runs, so localization can be replayed
without the models.

Files are an ``.npz`` archive of arrays plus one JSON document inside it (``__meta__``); nothing
is pickled: ``np.load(..., allow_pickle=False)``, and the only structured type decoded is the
layer description (``LayerInfo``). Pure numpy; no runner is imported here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from convlint.analyzers.errors import ConvlintError

RUN_NAMES = ("source/native", "source/tvm", "target/native", "target/tvm")
FORMAT = "convlint-runs/1"


@dataclass
class RunResults:
    """Runs by name (``RUN_NAMES``): per sample ``{output name: array}``; ``inputs`` by model role
    (``source``, ``target``): per sample ``{input name: array}``. ``layers`` by model role: the
    per-layer outputs of the first native runs, when the check captured them (the localization's
    capture is built from them; a saved capture holds them, so ``save`` leaves them out)."""

    runs: dict = field(default_factory=dict)
    inputs: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)
    layers: dict = field(default_factory=dict)

    def add(self, name: str, samples: list, names: list | None = None) -> None:
        """Record run ``name``; per-sample output lists are named by ``names`` (or their
        position)."""
        if name not in RUN_NAMES:
            raise ValueError(f"unknown run {name!r}; runs are {', '.join(RUN_NAMES)}")
        self.runs[name] = [
            s
            if isinstance(s, dict)
            else {(names[i] if names and i < len(names) else str(i)): a for i, a in enumerate(s)}
            for s in samples
        ]

    def outputs(self, name: str) -> list | None:
        """Run ``name`` as per-sample output lists (the order they were recorded in), or None."""
        r = self.runs.get(name)
        return None if r is None else [list(s.values()) for s in r]

    def save(self, path) -> None:
        save_struct(
            path, {"kind": "runs", "runs": self.runs, "inputs": self.inputs, "meta": self.meta}
        )

    @classmethod
    def load(cls, path) -> RunResults:
        d = load_struct(path)
        if d.get("kind") != "runs":
            raise ConvlintError(f"{path} holds no run results (it holds {d.get('kind')!r})")
        return cls(d["runs"], d["inputs"], d["meta"])


def save_capture(path, capture, runs: RunResults | None = None) -> None:
    """Write a localization capture (``localize.stages.Capture``) and the check's runs to
    ``path``."""
    cap = {f.name: getattr(capture, f.name) for f in fields(capture)}
    save_struct(
        path,
        {
            "kind": "capture",
            "capture": cap,
            "runs": None
            if runs is None
            else {"runs": runs.runs, "inputs": runs.inputs, "meta": runs.meta},
        },
    )


def load_capture(path, capture_cls) -> tuple:
    """``(capture, runs)`` read back from ``save_capture``'s file; ``capture_cls`` builds the
    capture."""
    d = load_struct(path)
    if d.get("kind") != "capture":
        raise ConvlintError(
            f"{path} holds no localization capture (it holds {d.get('kind')!r})",
            hint="write one with convlint diff --save-capture PATH",
        )
    r = d["runs"]
    return capture_cls(**d["capture"]), (
        None if r is None else RunResults(r["runs"], r["inputs"], r["meta"])
    )


def save_struct(path, obj) -> None:
    """``obj`` (dicts, lists, tuples, scalars, strings, arrays, LayerInfo) as npz + JSON."""
    arrays: dict = {}
    meta = {"format": FORMAT, "value": _encode(obj, arrays)}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path = Path(path)
    with open(path, "wb") as f:  # np.savez would add .npz to a path without it
        np.savez_compressed(f, **arrays)


def load_struct(path) -> Any:
    try:
        with np.load(Path(path), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise ConvlintError(f"cannot read {path} as saved run results: {e}") from None
    if "__meta__" not in arrays:
        raise ConvlintError(f"{path} is an npz archive but not one convlint wrote (no __meta__)")
    meta = json.loads(arrays.pop("__meta__").tobytes().decode())
    if meta.get("format") != FORMAT:
        raise ConvlintError(
            f"{path} was written in format {meta.get('format')!r}; this convlint reads {FORMAT}"
        )
    return _decode(meta["value"], arrays)


def _encode(v, arrays: dict):
    from convlint.analyzers.models.base import LayerInfo

    if isinstance(v, np.ndarray) or isinstance(v, np.generic) and not isinstance(v, (np.bool_,)):
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(v)
        return {"__array__": key, "scalar": isinstance(v, np.generic)}
    if isinstance(v, np.bool_):
        return bool(v)
    if isinstance(v, LayerInfo):
        return {"__layer__": {f.name: _encode(getattr(v, f.name), arrays) for f in fields(v)}}
    if isinstance(v, dict):
        if all(isinstance(k, str) for k in v):
            return {"__dict__": {k: _encode(x, arrays) for k, x in v.items()}}
        return {"__items__": [[_encode(k, arrays), _encode(x, arrays)] for k, x in v.items()]}
    if isinstance(v, tuple):
        return {"__tuple__": [_encode(x, arrays) for x in v]}
    if isinstance(v, list):
        return [_encode(x, arrays) for x in v]
    if isinstance(v, float) and not np.isfinite(v):
        return {"__float__": repr(v)}
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, bytes):
        return {"__bytes__": v.hex()}
    raise ConvlintError(f"cannot save a {type(v).__name__} in run results")


def _decode(v, arrays: dict):
    if isinstance(v, list):
        return [_decode(x, arrays) for x in v]
    if not isinstance(v, dict):
        return v
    if "__array__" in v:
        a = arrays[v["__array__"]]
        return a[()] if v.get("scalar") else a
    if "__dict__" in v:
        return {k: _decode(x, arrays) for k, x in v["__dict__"].items()}
    if "__items__" in v:
        return {_decode(k, arrays): _decode(x, arrays) for k, x in v["__items__"]}
    if "__tuple__" in v:
        return tuple(_decode(x, arrays) for x in v["__tuple__"])
    if "__float__" in v:
        return float(v["__float__"])
    if "__bytes__" in v:
        return bytes.fromhex(v["__bytes__"])
    if "__layer__" in v:
        from convlint.analyzers.models.base import LayerInfo

        return LayerInfo(**{k: _decode(x, arrays) for k, x in v["__layer__"].items()})
    raise ConvlintError("saved run results hold an unknown structure")
