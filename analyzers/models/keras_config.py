"""A Keras model config read without loading a framework: a ``.keras`` archive's
``config.json`` gives its layers (class and config). Fast (a zip member read) and safe (no code
is deserialized). Other formats return None: the static rules then stay silent."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

# (path, mtime_ns, size) -> layers: the language server runs the static rules on every edit of a
# script that loads a .keras file; the file is read again only when it changed
_READ: dict = {}
_READ_MAX = 64


def keras_layers(path: str | None, base: str | None = None) -> list[tuple[str, dict]] | None:
    """[(class_name, config)] for every layer in a .keras file, nested models included."""
    if not path or not path.endswith(".keras"):
        return None
    p = Path(path)
    if not p.is_absolute() and base:
        p = Path(base) / p
    try:
        st = os.stat(p)
    except OSError:
        return None
    key = (str(p), st.st_mtime_ns, st.st_size)
    if key not in _READ:
        try:
            with zipfile.ZipFile(p) as z:
                cfg = json.loads(z.read("config.json"))
        except (OSError, KeyError, ValueError, zipfile.BadZipFile):
            return None
        if len(_READ) >= _READ_MAX:
            _READ.clear()
        _READ[key] = config_layers(cfg)
    return list(_READ[key])


def config_layers(cfg) -> list[tuple[str, dict]]:
    """Every ``{"class_name", "config"}`` node of a Keras model config, depth first."""
    out: list[tuple[str, dict]] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "class_name" in node and isinstance(node.get("config"), dict):
                out.append((str(node["class_name"]), node["config"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(cfg)
    return out
