"""Find the conversion scripts (and, opt-in, the training scripts) under the paths a user names.

A file named explicitly is always analysed. In a directory, a Python file is a conversion script
when it mentions a converter entry point, a notebook when its code cells do, and a shell script
or Makefile when it runs ``tf2onnx.convert``; hidden folders (``.ipynb_checkpoints`` among them),
virtual environments and caches are skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from convlint.analyzers import rules as R
from convlint.analyzers.config import excluded
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.scripts import notebook
from convlint.analyzers.scripts.check import is_shell

MARKERS = re.compile(
    r"TFLiteConverter|tf2onnx|torch\.onnx|onnx\.export|onnx2tf|onnx2torch|litert_torch|"
    r"ai_edge_torch|\.export\(|"
    r"Interpreter\(|InferenceSession\(|running_mean|set_weights\("
)
# a training script: it trains a Keras model or runs a PyTorch optimisation step
TRAIN_MARKERS = re.compile(r"\.fit\(|\.train_on_batch\(|\.backward\(|\.step\(\)")
FRAMEWORKS = re.compile(r"^\s*(import|from)\s+(torch|tensorflow|keras|tf_keras)\b", re.M)
SKIP_DIRS = {
    "node_modules",
    "__pycache__",
    "site-packages",
    "build",
    "dist",
    ".git",
    ".venv",
    "venv",
}


def discover(paths: list[str], exclude: tuple = ()) -> list[str]:
    """Conversion scripts: every file named, and in folders the scripts that mention a converter."""
    def keep(name: str, f: str) -> bool:
        script = name.endswith(".py") or is_shell(name) or notebook.is_notebook(name)
        return script and bool(MARKERS.search(_head(f)))

    return _walk(paths, exclude, keep)


def discover_training(paths: list[str], exclude: tuple = (), listed: tuple = ()) -> list[str]:
    """Training scripts. ``listed`` (the config's ``train-scripts``, paths or globs) when given;
    else the Python files under ``paths`` (a file named there too) that import a framework and
    train with it (``fit``, ``train_on_batch``, ``backward()``, ``step()``)."""
    if listed:
        import glob

        out = []
        for pattern in listed:
            hits = (
                sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else [pattern]
            )
            if not hits or not all(Path(h).is_file() for h in hits):
                raise ConvlintError(
                    f"train-scripts: {pattern}: no such file", rule=R.BAD_ARGUMENTS.code
                )
            out += [os.path.normpath(h) for h in hits if not excluded(h, exclude)]
        return list(dict.fromkeys(out))
    def keep(name: str, f: str) -> bool:
        return (name.endswith(".py") or notebook.is_notebook(name)) and _trains(_head(f))

    return list(_walk(paths, exclude, keep, named=False))


def _trains(text: str) -> bool:
    return bool(FRAMEWORKS.search(text) and TRAIN_MARKERS.search(text))


def _walk(paths: list[str], exclude: tuple, keep, named: bool = True) -> list[str]:
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_file():
            if named or keep(path.name, str(path)):
                out.append(str(path))
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
                for name in sorted(files):
                    f = os.path.join(root, name)
                    if not excluded(f, exclude) and keep(name, f):
                        out.append(os.path.normpath(f))
        else:
            raise ConvlintError(f"{p}: no such file or directory", rule=R.BAD_ARGUMENTS.code)
    return out


def _head(path: str) -> str:
    """The text the markers are looked for in: a notebook's code cells joined, else the file."""
    if notebook.is_notebook(path):
        return notebook.code(path)
    try:
        with open(path, encoding="utf-8", errors="ignore") as fh:
            return fh.read(200_000)
    except OSError:
        return ""
