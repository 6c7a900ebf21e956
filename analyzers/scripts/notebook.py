"""Jupyter notebooks as scripts: one reader for ``check``, ``trace`` and ``train-check``.

Most conversions are written in notebooks, where a model built in one cell is converted in
another; so the code cells are joined in order into one script and every rule, run and probe
sees what the kernel would have run. IPython syntax is not Python: magics (``%...``), cell magics
(``%%...``) and shell escapes (``!...``, ``x = !ls``) are blanked, never removed, so a line of the
joined text is the same line of the same cell. Findings are then mapped back to the cell and the
line in it, and to the line of the ``.ipynb`` file that stores that source line (what SARIF and
GitHub annotations point at). A rewrite is spliced into the cell it belongs to, in a new file that
keeps every other cell, its outputs and the metadata.

nbformat 4 is read as plain JSON (``cells``, ``cell_type``, ``source`` as a list of lines or a
string): convlint does not depend on nbformat or Jupyter.
"""

from __future__ import annotations

import bisect
import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from convlint.analyzers import rules as R
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.report.findings import Finding, Location, ScriptReport
from convlint.analyzers.scripts.edits import TextEdit, splice

SUFFIX = ".ipynb"
# a line the kernel gives to IPython, not Python: a magic, a shell escape, or an assignment from one
_IPYTHON_LINE = re.compile(r"\s*(?:[%!]|[\w.]+(?:\s*,\s*[\w.]+)*\s*=\s*[%!])")


def is_notebook(path: str) -> bool:
    return str(path).endswith(SUFFIX)


@dataclass(frozen=True)
class Notebook:
    """A notebook read for analysis. ``text`` is its code cells joined; ``where[i]`` is the
    (cell index, 1-based line in the cell) of the joined text's line ``i + 1``; ``file_lines``
    maps (cell, line in the cell) to the line of the ``.ipynb`` file that stores it, where found."""

    path: str
    doc: dict
    text: str
    where: tuple[tuple[int, int], ...]
    file_lines: dict[tuple[int, int], int]

    def position(self, line: int) -> tuple[int, int] | None:
        """(cell, line in the cell) of a joined line; the line just past the end (where an edit
        that deletes the last line ends) is past the end of the last code cell."""
        if 1 <= line <= len(self.where):
            return self.where[line - 1]
        if line == len(self.where) + 1 and self.where:
            cell, last = self.where[-1]
            return cell, last + 1
        return None

    def _end(self, cell: int, line: int, col: int) -> tuple[int, int, int] | None:
        """The end of a range that starts in ``cell``: a range ending at column 0 of the next
        cell's first line (a deleted last line) ends after the last line of its own cell."""
        pos = self.position(line)
        if pos is None:
            return None
        if pos[0] != cell:
            if col != 0:
                return None
            return cell, _cell_length(self.where, cell) + 1, 0
        return pos[0], pos[1], col

    def location(self, loc: Location) -> Location:
        """``loc`` with the cell, the line in the cell and the file's own line added (``line``
        stays the line of the joined text, as every edit and the trace's call sites count)."""
        pos = self.position(loc.line) if loc.line else None
        if pos is None or pos[1] > _cell_length(self.where, pos[0]):
            return loc
        cell, line = pos
        end = self._end(cell, loc.end_line, loc.end_column or 0) if loc.end_line else None
        end_line = end[1] if end is not None else None
        return replace(
            loc,
            cell=cell,
            cell_line=line,
            cell_end_line=end_line,
            notebook_line=self.file_lines.get((cell, line)),
            notebook_end_line=self.file_lines.get(
                (cell, min(end_line, _cell_length(self.where, cell)))
            )
            if end_line
            else None,
        )

    def edit(self, d: dict) -> dict:
        """An edit's dict with its cell and its range in the cell added (``cell_start``,
        ``cell_end``); an edit that spans cells is left as it is, and ``rewrite`` refuses it."""
        start = self.position(d["start"]["line"])
        if start is None:
            return d
        end = self._end(start[0], d["end"]["line"], d["end"]["column"])
        if end is None:
            return d
        return {
            **d,
            "cell": start[0],
            "cell_start": {"line": start[1], "column": d["start"]["column"]},
            "cell_end": {"line": end[1], "column": end[2]},
        }

    def map_report(self, rep: ScriptReport) -> ScriptReport:
        """Every finding, edit and call site of the report that is in this notebook, mapped."""
        convs = tuple(
            replace(
                c, findings=tuple(self._finding(f) for f in c.findings), extra=self._sites(c.extra)
            )
            for c in rep.conversions
        )
        return replace(
            rep,
            findings=tuple(self._finding(f) for f in rep.findings),
            conversions=convs,
            extra=self._sites(rep.extra),
        )

    def _mine(self, file: str | None) -> bool:
        return file is None or os.path.abspath(file) == os.path.abspath(self.path)

    def _finding(self, f: Finding) -> Finding:
        if not self._mine(f.location.file):
            return f
        rep = f.repair
        if rep is not None and rep.edits:
            rep = replace(rep, edits=self._edits(rep.edits))
        evidence = f.evidence
        if isinstance(evidence.get("fixes"), list):  # the alternatives to the preferred rewrite
            evidence = {
                **evidence,
                "fixes": [
                    {**x, "edits": list(self._edits(x.get("edits") or ()))}
                    for x in evidence["fixes"]
                ],
            }
        return f.with_(location=self.location(f.location), repair=rep, evidence=evidence)

    def _edits(self, edits) -> tuple:
        return tuple(self.edit(e) if self._mine(e.get("file")) else e for e in edits)

    def _sites(self, extra: dict) -> dict:
        """The report's extras with the static converter calls and the trace's call sites mapped."""

        def site(d: dict | None) -> dict | None:
            if (
                not isinstance(d, dict)
                or not isinstance(d.get("line"), int)
                or not self._mine(d.get("file"))
            ):
                return d
            pos = self.position(d["line"])
            return {**d, "cell": pos[0], "cell_line": pos[1]} if pos else d

        out = dict(extra)
        if "converter_calls" in out:
            out["converter_calls"] = [site(c) for c in out["converter_calls"]]
        if out.get("call_site"):
            out["call_site"] = site(out["call_site"])
        run = out.get("run")
        if isinstance(run, dict) and run.get("conversions"):
            out["run"] = {
                **run,
                "conversions": [
                    {**c, "call_site": site(c.get("call_site"))} for c in run["conversions"]
                ],
            }
        return out

    def rewrite(self, edits: list[TextEdit] | tuple) -> str:
        """The notebook's JSON with ``edits`` (over the joined text) spliced into the cells they
        fall in; every other cell, output and metadata kept. Raises ValueError for an edit that
        spans two cells."""
        per_cell: dict[int, list[TextEdit]] = {}
        for e in edits:
            d = self.edit(e.to_dict())
            if "cell" not in d:
                raise ValueError(f"the edit at line {e.line} spans two cells")
            (a, b) = d["cell_start"], d["cell_end"]
            per_cell.setdefault(d["cell"], []).append(
                TextEdit(a["line"], a["column"], b["line"], b["column"], e.new_text)
            )
        doc = json.loads(json.dumps(self.doc))
        for i, cell_edits in per_cell.items():
            cell = doc["cells"][i]
            src = _normal(_source(cell))
            ended = src.endswith("\n")
            new = splice(src if ended else src + "\n", cell_edits)
            if not ended and new.endswith("\n"):
                new = new[:-1]
            cell["source"] = (
                new.splitlines(keepends=True) if isinstance(cell["source"], list) else new
            )
        return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def read_notebook(path: str) -> Notebook:
    """Read and join a notebook. Unreadable, not JSON or not nbformat 4: a user error (CL001)."""
    p = Path(path)
    if not p.is_file():
        raise ConvlintError(f"{path}: no such notebook", rule=R.BAD_ARGUMENTS.code)
    try:
        raw = p.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as e:
        raise ConvlintError(
            f"{path}: cannot read it as a UTF-8 notebook ({e.__class__.__name__})",
            rule=R.BAD_ARGUMENTS.code,
        ) from None
    return parse_notebook(raw, path)


def parse_notebook(raw: str, path: str) -> Notebook:
    """A notebook from its file's text (see ``read_notebook``)."""
    try:
        doc = json.loads(raw)
    except ValueError as e:
        raise ConvlintError(
            f"{path}: not a Jupyter notebook: the file is not valid JSON ({e})",
            rule=R.BAD_ARGUMENTS.code,
        ) from None
    bad = _malformed(doc)
    if bad:
        raise ConvlintError(
            f"{path}: not a Jupyter notebook convlint can read: {bad}",
            rule=R.BAD_ARGUMENTS.code,
            hint="convlint reads nbformat 4 (Jupyter 4.0 and later); `jupyter nbconvert "
            "--to notebook` upgrades an older one",
        )
    lines: list[str] = []
    where: list[tuple[int, int]] = []
    for i, cell in enumerate(doc["cells"]):
        if cell.get("cell_type") != "code":
            continue
        for n, line in enumerate(_python_lines(_normal(_source(cell))), 1):
            lines.append(line + "\n")
            where.append((i, n))
    return Notebook(path, doc, "".join(lines), tuple(where), _file_lines(raw, doc["cells"]))


def code(path: str) -> str:
    """The joined code for discovery's converter test; the raw file when it is not a notebook
    convlint can read (named in a folder, it is then reported as the error it is)."""
    try:
        return read_notebook(path).text
    except ConvlintError:
        try:
            return Path(path).read_text(encoding="utf-8", errors="ignore")[:200_000]
        except OSError:
            return ""


def _malformed(doc) -> str | None:
    if not isinstance(doc, dict) or not isinstance(doc.get("cells"), list):
        return "no 'cells' list"
    if doc.get("nbformat") != 4:
        return f"nbformat {doc.get('nbformat')!r}, not 4"
    for i, cell in enumerate(doc["cells"]):
        if not isinstance(cell, dict) or not isinstance(cell.get("cell_type"), str):
            return f"cell {i} has no cell_type"
        src = cell.get("source")
        if not (
            isinstance(src, str) or (isinstance(src, list) and all(isinstance(s, str) for s in src))
        ):
            return f"cell {i}'s source is neither a string nor a list of strings"
    return None


def _source(cell: dict) -> str:
    src = cell["source"]
    return src if isinstance(src, str) else "".join(src)


def _normal(text: str) -> str:
    """One line ending, so a line of the joined text is a line of its cell (ast counts \\r too)."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _split(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _python_lines(text: str) -> list[str]:
    """A code cell's lines with IPython's own syntax blanked: a ``%%`` cell wholly, a magic or
    shell line (and its ``\\`` continuations) alone. An indented one becomes ``pass`` at its
    indent, so the block it sat in still parses."""
    lines = _split(text)
    first = next((ln for ln in lines if ln.strip()), "")
    if first.lstrip().startswith("%%"):
        return ["" for _ in lines]
    out, cont = [], False
    for ln in lines:
        if cont or _IPYTHON_LINE.match(ln):
            cont = ln.rstrip().endswith("\\")
            indent = ln[: len(ln) - len(ln.lstrip())]
            out.append(indent + "pass" if indent else "")
        else:
            out.append(ln)
    return out


def _cell_length(where: tuple[tuple[int, int], ...], cell: int) -> int:
    """How many lines the code cell contributes (its last line number in ``where``)."""
    return max((n for c, n in where if c == cell), default=0)


def _file_lines(raw: str, cells: list) -> dict[tuple[int, int], int]:
    """Where each code cell's source lines are stored in the ``.ipynb`` file, found by looking
    for each cell's ``"source"`` key in order and, after it, each source string as JSON encodes
    it. A cell not found that way (another writer's escaping) gets no file lines."""
    keys = [m.end() for m in re.finditer(r'"source"\s*:', raw)]
    if len(keys) != len(cells):
        return {}
    newlines = [i for i, ch in enumerate(raw) if ch == "\n"]
    out: dict[tuple[int, int], int] = {}
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        parts = cell["source"] if isinstance(cell["source"], list) else [cell["source"]]
        stop = keys[i + 1] if i + 1 < len(keys) else len(raw)
        pos, line, found = keys[i], 1, {}
        for part in parts:
            at = _find(raw, part, pos, stop)
            if at < 0:
                found = {}
                break
            file_line = bisect.bisect_left(newlines, at) + 1
            for _ in range(
                max(1, _normal(part).count("\n") + (0 if part.endswith(("\n", "\r")) else 1))
            ):
                found[(i, line)] = file_line
                line += 1
            pos = at + 1
        out.update(found)
    return out


def _find(raw: str, part: str, start: int, stop: int) -> int:
    for ascii_only in (False, True):
        at = raw.find(json.dumps(part, ensure_ascii=ascii_only), start, stop)
        if at >= 0:
            return at
    return -1
