"""Text edits: the fixes static rules offer, as ranges over the script's text.

Ranges use 1-based lines and 0-based *character* columns (``ast`` gives UTF-8 byte columns;
``char_col`` converts). An edit list is applied back to front; ``apply`` refuses a result that
no longer parses, so a fix never breaks a script.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Protocol

    class Located(Protocol):
        """An ``ast`` node with a source position: a statement, expression, keyword, ..."""

        @property
        def lineno(self) -> int: ...
        @property
        def col_offset(self) -> int: ...
        @property
        def end_lineno(self) -> int | None: ...
        @property
        def end_col_offset(self) -> int | None: ...


@dataclass(frozen=True)
class TextEdit:
    line: int
    col: int
    end_line: int
    end_col: int
    new_text: str

    def to_dict(self, file: str | None = None) -> dict:
        d = {"start": {"line": self.line, "column": self.col},
             "end": {"line": self.end_line, "column": self.end_col}, "new_text": self.new_text}
        if file:
            d["file"] = file
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TextEdit:
        return cls(d["start"]["line"], d["start"]["column"], d["end"]["line"], d["end"]["column"],
                   d["new_text"])


def char_col(lines: list[str], line: int, byte_col: int) -> int:
    """Convert an ``ast`` UTF-8 byte column on 1-based ``line`` to a character column."""
    if 1 <= line <= len(lines):
        return len(lines[line - 1].encode("utf-8")[:byte_col].decode("utf-8", "ignore"))
    return byte_col


def _end(node: Located) -> tuple[int, int]:
    """A node's end (line, byte column); ``ast.parse`` sets both on every node it makes."""
    if node.end_lineno is None or node.end_col_offset is None:
        raise ValueError(f"the {type(node).__name__} node has no end position")
    return node.end_lineno, node.end_col_offset


def _offset(lines: list[str], line: int, col: int) -> int:
    return sum(len(s) for s in lines[: line - 1]) + col


def splice(text: str, edits: list[TextEdit] | tuple) -> str:
    """Apply non-overlapping edits without checking the result: a notebook cell is spliced
    alone, and alone it need not parse (the notebook's joined code is what ``apply`` checks)."""
    lines = text.splitlines(keepends=True)
    if not lines or not lines[-1].endswith("\n"):
        lines.append("")
    out = text
    for e in sorted(edits, key=lambda e: (e.line, e.col), reverse=True):
        a, b = _offset(lines, e.line, e.col), _offset(lines, e.end_line, e.end_col)
        out = out[:a] + e.new_text + out[b:]
    return out


def apply(text: str, edits: list[TextEdit] | tuple) -> str:
    """Apply non-overlapping edits; raise ValueError when the result does not parse."""
    out = splice(text, edits)
    try:
        ast.parse(out)
    except SyntaxError as e:
        raise ValueError(f"the edits would break the script: {e.msg} (line {e.lineno})") from None
    return out


class Editor:
    """Builds edits for one script from ``ast`` nodes (byte columns in, character columns out)."""

    def __init__(self, text: str, tree: ast.AST | None = None, alone: set | None = None):
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.tree = tree
        self._alone: set | None = alone  # ids of only-statements, when the caller knows them

    def _only_statement(self, stmt: ast.stmt) -> bool:
        """True when ``stmt`` is the only statement of its block (deleting it would empty it)."""
        if self._alone is None:
            self._alone = set()
            for node in ast.walk(self.tree) if self.tree is not None else ():
                for name in ("body", "orelse", "finalbody"):
                    block = getattr(node, name, None)
                    if (
                        isinstance(block, list)
                        and len(block) == 1
                        and not isinstance(node, ast.Module)
                    ):
                        self._alone.add(id(block[0]))
        return id(stmt) in self._alone

    def _pos(self, line: int, byte_col: int) -> tuple[int, int]:
        return line, char_col(self.lines, line, byte_col)

    def delete_statement(self, stmt: ast.stmt) -> TextEdit:
        """Remove whole lines when the statement is alone on them, else the statement only; the
        only statement of a block becomes ``pass``."""
        line, end = stmt.lineno, stmt.end_lineno or stmt.lineno
        if self._only_statement(stmt):
            return self.replace(stmt, "pass")
        first = self.lines[line - 1]
        last = self.lines[end - 1]
        alone = (
            not first[: stmt.col_offset].strip()
            and not last.encode()[stmt.end_col_offset :].strip()
        )
        if alone:
            return TextEdit(line, 0, end + 1, 0, "") if end < len(self.lines) else \
                TextEdit(line, 0, end, len(last), "")
        return TextEdit(*self._pos(line, stmt.col_offset), *self._pos(*_end(stmt)), "")

    def replace(self, node: Located, new_text: str) -> TextEdit:
        return TextEdit(*self._pos(node.lineno, node.col_offset), *self._pos(*_end(node)), new_text)

    def delete_keyword(self, call: ast.Call, kw: ast.keyword) -> TextEdit:
        """Remove ``name=value`` and the comma that joins it to its neighbour."""
        items = sorted([*call.args, *call.keywords], key=lambda n: (n.lineno, n.col_offset))
        i = next(k for k, n in enumerate(items) if n is kw)
        if i > 0:
            prev = items[i - 1]
            return TextEdit(*self._pos(*_end(prev)), *self._pos(*_end(kw)), "")
        if len(items) > 1:
            nxt = items[1]
            return TextEdit(*self._pos(kw.lineno, kw.col_offset),
                            *self._pos(nxt.lineno, nxt.col_offset), "")
        return self.replace(kw, "")

    def delete_after(self, prev: Located, node: Located) -> TextEdit:
        """Remove ``node`` and what joins it to ``prev`` before it (``, x`` in a list or call)."""
        return TextEdit(*self._pos(*_end(prev)), *self._pos(*_end(node)), "")

    def set_keyword(self, call: ast.Call, name: str, value: str) -> TextEdit:
        """Set ``name=value`` on a call: replace the value if present, else append the keyword."""
        for kw in call.keywords:
            if kw.arg == name:
                return self.replace(kw.value, value)
        end_line, end_col = _end(call)
        end_col -= 1  # before ")"
        before = self.lines[end_line - 1].encode()[:end_col].decode("utf-8", "ignore").rstrip()
        has_args = bool(call.args or call.keywords)
        sep = "" if not has_args else (" " if before.endswith(",") else ", ")
        pos = self._pos(end_line, end_col)
        return TextEdit(*pos, *pos, f"{sep}{name}={value}")

    def insert_line_before(self, stmt: ast.stmt, code: str) -> TextEdit:
        indent = self.lines[stmt.lineno - 1][: len(self.lines[stmt.lineno - 1]) -
                                             len(self.lines[stmt.lineno - 1].lstrip())]
        return TextEdit(stmt.lineno, 0, stmt.lineno, 0, f"{indent}{code}\n")

    def insert_line_after(self, stmt: ast.stmt, code: str) -> TextEdit:
        src = self.lines[stmt.lineno - 1]
        indent = src[: len(src) - len(src.lstrip())]
        end = stmt.end_lineno or stmt.lineno
        if end < len(self.lines):
            return TextEdit(end + 1, 0, end + 1, 0, f"{indent}{code}\n")
        last = self.lines[end - 1]
        nl = "" if last.endswith("\n") else "\n"
        return TextEdit(end, len(last), end, len(last), f"{nl}{indent}{code}\n")
