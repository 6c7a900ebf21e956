"""Parse a script again after an edit, reusing the top-level statements the edit did not touch.

An editor sends the whole text after each keystroke; ``ast.parse`` of a 300-line script is about
half of the static rules' time. The text before and after the edited lines is the same as in the
previous version, so the top-level statements that lie wholly there parse to the same nodes.
Only the lines from the first statement the edit touches to the last one are parsed again, as one
piece, with as many newlines before it as it is from the top so that every line and column comes
out as in a parse of the whole text. The result is the ``ast.Module`` a full parse gives (tested
against ``ast.parse`` on random edits, with ``include_attributes``).

Why that holds: the kept statements before the piece end on lines the edit did not change, at a
top-level statement boundary of the old text, so the tokenizer starts the piece in a clean state;
the piece parses on its own (else the whole text is parsed, which also gives the right
SyntaxError); the statements after it start at a boundary of the old text and did not change.
When the edit adds or removes lines, the statements after it would move, so everything after the
piece's start is parsed again (nodes are shared between versions and never changed, so they are
not shifted in place).

Nodes are shared with earlier results: nothing may modify a tree that ``parse`` returned.
Nothing is kept unless a caller asks with ``keep`` (the language server does, for its open
documents; ``forget`` on close).
"""

from __future__ import annotations

import ast
import threading
from collections import OrderedDict

_max_documents = 0  # none kept until a caller that edits asks (the language server): see keep()
_last: OrderedDict = OrderedDict()  # path -> (lines, tree, spans) of the last parse of that path
_lock = threading.Lock()


def keep(documents: int) -> None:
    """Keep the last parse of up to ``documents`` paths for the next parse of each (0: keep none,
    the default, right for a one-pass run such as ``convlint check``)."""
    global _max_documents
    with _lock:
        _max_documents = documents
        _evict()


def _evict() -> None:
    """Drop the least recently parsed paths beyond the bound (the caller holds the lock)."""
    while len(_last) > _max_documents:
        _last.popitem(last=False)


def _spans(tree: ast.Module) -> list:
    """Per top-level statement: (first line, last line), 0-based, decorators included."""
    out = []
    for s in tree.body:
        first = min([s.lineno, *(d.lineno for d in getattr(s, "decorator_list", ()))])
        if s.end_lineno is None:  # ast.parse sets it on every statement
            raise ValueError("a parsed statement has no end line")
        out.append((first - 1, s.end_lineno - 1))
    return out


def parse(text: str, path: str = "<script>") -> ast.Module:
    """``ast.parse(text, filename=path)``, reusing the previous parse of ``path`` where the edit
    left statements alone. Raises SyntaxError as ``ast.parse`` does."""
    if not _max_documents:
        return ast.parse(text, filename=path)
    # lines as the tokenizer counts them; a lone carriage return (old Mac files) is a line end
    # too, which str.split cannot follow: such a text is always parsed whole
    lines = text.split("\n") if text.count("\r") == text.count("\r\n") else None
    with _lock:
        prev = _last.get(path)
    tree = _incremental(prev, lines, path) if prev is not None and lines is not None else None
    if tree is None:
        try:
            tree = ast.parse(text, filename=path)
        except SyntaxError:
            forget(path)
            raise
    if lines is not None:
        with _lock:
            _last[path] = (lines, tree, _spans(tree))
            _last.move_to_end(path)
            _evict()
    return tree


def forget(path: str | None = None) -> None:
    with _lock:
        if path is None:
            _last.clear()
        else:
            _last.pop(path, None)


def _incremental(prev, lines: list, path: str) -> ast.Module | None:
    old_lines, old_tree, spans = prev
    if old_lines == lines:
        return old_tree
    n_old, n_new = len(old_lines), len(lines)
    limit = min(n_old, n_new)
    first = 0  # the first changed line
    while first < limit and old_lines[first] == lines[first]:
        first += 1
    tail = 0  # how many lines at the end did not change
    while tail < limit - first and old_lines[n_old - 1 - tail] == lines[n_new - 1 - tail]:
        tail += 1
    delta = n_new - n_old
    # kept before the piece: statements wholly above the first changed line, and not on a line the
    # piece's first statement starts on (two statements on one line, a semicolon between)
    kb = 0
    while kb < len(spans) and spans[kb][1] < first:
        kb += 1
    while 0 < kb < len(spans) and spans[kb - 1][1] >= spans[kb][0]:
        kb -= 1
    start = min(first, spans[kb][0]) if kb < len(spans) else first
    # kept after it: only when no line was added or removed (else they moved); wholly below the
    # last changed line, and not on a line the piece's last statement ends on
    ka, end = len(spans), n_new
    if delta == 0:
        last = n_old - tail - 1
        while ka > kb and spans[ka - 1][0] > last:
            ka -= 1
        while kb < ka < len(spans) and spans[ka - 1][1] >= spans[ka][0]:
            ka += 1
        end = spans[ka][0] if ka < len(spans) else n_new
    piece = "\n" * start + "\n".join(lines[start:end])
    try:
        body = ast.parse(piece, filename=path).body
    except SyntaxError:
        return None  # the whole text is parsed for the error and its message
    return ast.Module(body=old_tree.body[:kb] + body + old_tree.body[ka:], type_ignores=[])
