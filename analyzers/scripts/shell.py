"""``python -m tf2onnx.convert`` command lines in shell scripts and Makefiles.

In: the file's text. Out: ``Conversion``-like records (flags with their exact columns) that the
tf2onnx rules read, so a shell script gets the same findings and fixes as a Python one.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

_CMD = re.compile(r"python[0-9.]*\s+-m\s+tf2onnx\.convert\b")


@dataclass
class CliConversion:
    line: int  # 1-based, where the command starts
    col: int
    end_col: int
    flags: dict = field(default_factory=dict)  # --flag -> (value, line, start col, end col)


def find_tf2onnx_commands(text: str) -> list[CliConversion]:
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _CMD.search(lines[i])
        if not m:
            i += 1
            continue
        conv = CliConversion(i + 1, m.start(), len(lines[i].rstrip()))
        j = i
        while True:  # the command and its backslash continuations
            seg = lines[j] if j > i else lines[j][m.end():]
            base = 0 if j > i else m.end()
            _flags(seg.rstrip("\\"), j + 1, base, conv.flags)
            if not lines[j].rstrip().endswith("\\") or j + 1 >= len(lines):
                break
            j += 1
        out.append(conv)
        i = j + 1
    return out


def _flags(segment: str, line: int, base: int, into: dict) -> None:
    try:
        lex = shlex.shlex(segment, posix=True, punctuation_chars=False)
        lex.whitespace_split = True
        tokens = list(lex)
    except ValueError:
        return
    pos = 0
    spans = []
    for t in tokens:
        k = segment.find(t, pos)
        if k < 0:
            k = pos
        spans.append((t, base + k, base + k + len(t)))
        pos = k + len(t)
    for n, (t, a, b) in enumerate(spans):
        if not t.startswith("--"):
            continue
        if "=" in t:
            name, val = t.split("=", 1)
            into[name] = (val, line, a + len(name) + 1, b)
        elif n + 1 < len(spans) and not spans[n + 1][0].startswith("--"):
            v, va, vb = spans[n + 1]
            into[t] = (v, line, va, vb)
        else:
            into[t] = (True, line, a, b)
