"""Find the conversion scripts under the paths a user names.

A file named explicitly is always analysed. In a directory, a Python file is a conversion script
when it mentions a converter entry point, and a shell script or Makefile when it runs
``tf2onnx.convert``; hidden folders, virtual environments and caches are skipped.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from convlint.analyzers import rules as R
from convlint.analyzers.config import excluded
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.scripts.check import is_shell

MARKERS = re.compile(r"TFLiteConverter|tf2onnx|torch\.onnx|onnx\.export|onnx2tf|onnx2torch|\.export\(|"
                     r"Interpreter\(|InferenceSession\(|running_mean|set_weights\(")
SKIP_DIRS = {"node_modules", "__pycache__", "site-packages", "build", "dist", ".git", ".venv", "venv"}


def discover(paths: list[str], exclude: tuple = ()) -> list[str]:
    out: list[str] = []
    for p in paths:
        path = Path(p)
        if path.is_file():
            out.append(str(path))
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIP_DIRS)
                for name in sorted(files):
                    f = os.path.join(root, name)
                    if excluded(f, exclude):
                        continue
                    if (name.endswith(".py") or is_shell(name)) and _mentions_converter(f):
                        out.append(os.path.normpath(f))
        else:
            raise ConvlintError(f"{p}: no such file or directory", rule=R.BAD_ARGUMENTS.code)
    return out


def _mentions_converter(path: str) -> bool:
    try:
        with open(path, encoding="utf-8", errors="ignore") as fh:
            return bool(MARKERS.search(fh.read(200_000)))
    except OSError:
        return False
