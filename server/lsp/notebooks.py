"""LSP 3.17 notebook documents (``notebookDocument/didOpen|didChange|didSave|didClose``).

A notebook's cells are joined into one script as ``convlint check nb.ipynb`` joins them
(``analyzers/scripts/notebook.py``: code cells in order, magics and shell escapes blanked), so a
model loaded in one cell and converted in another is one conversion. The static rules run on
that script; each finding is mapped back to its cell and published on the cell's URI, with its
range and its fixes' edits in the cell's own lines, so a quick fix edits the right cell (a fix
whose edits span cells is not offered). The cells' states are kept apart from the scripts'
(``ConvlintServer.cells``) so that nothing schedules a cell as a script of its own.

Heavy checks: on save (when heavy checks are on and the workspace is trusted), each conversion
whose model files exist is checked in the worker as a script's are (``check_pairs``), and its
findings land on the converter call in the cell that holds it (``ConvlintServer.notebook_pairs``
keeps each notebook's pairs for that). With ``traceOnSave`` the saved notebook is traced too
(``trace``: its code cells run in order as one script, in the worker), and the trace's findings,
which carry their cell, land on their cells until the cells' code changes. Train-check of a
notebook runs from the CLI.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from lsprotocol import types as T
from pygls.uris import to_fs_path

from convlint.server.lsp import adapter
from convlint.server.lsp.session import DocState, script_pairs, text_hash

# the notebooks the server syncs: Jupyter notebooks' Python cells
SYNC = T.NotebookDocumentSyncOptions(
    notebook_selector=[
        T.NotebookDocumentFilterWithCells(
            cells=[T.NotebookCellLanguage("python")], notebook="jupyter-notebook"
        )
    ],
    save=True,
)


def check(ls, notebook_uri: str) -> None:
    """Run the static rules on the notebook and publish every cell's diagnostics."""
    from convlint.analyzers.report import policy
    from convlint.analyzers.scripts.check import analyze_source
    from convlint.analyzers.scripts.notebook import parse_notebook

    nb = ls.workspace.get_notebook_document(notebook_uri=notebook_uri)
    if nb is None:
        return
    path = to_fs_path(notebook_uri) or notebook_uri
    cells = [(c, ls.workspace.get_text_document(c.document)) for c in nb.cells]
    raw = {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {},
        "cells": [
            {
                "cell_type": "code" if c.kind == T.NotebookCellKind.Code else "markdown",
                "source": doc.source if doc is not None else "",
            }
            for c, doc in cells
        ],
    }
    book = parse_notebook(json.dumps(raw), path)
    sess = ls.session(path)
    found: dict[int, list] = {}
    calls: dict[int, list] = {}  # cell -> (ConversionReport, its converter call in the cell)
    pairs: list = []
    whole_calls: list = []
    if sess.settings.enable and not ls.excluded(path):
        raw_report = analyze_source(book.text, path)
        report = policy.apply(raw_report, ls.effective_config(sess))
        for f in book.map_report(report).findings:
            g = in_cell(f)
            if g is not None:
                found.setdefault(f.location.cell, []).append(g)
        whole_calls = raw_report.extra.get("converter_calls", [])
        whole = DocState(notebook_uri, path, calls=whole_calls)
        for p in script_pairs(whole, sess.root):
            pairs.append((p.source, p.target))
            rep, c = ls.results.get((p.source, p.target)), whole.calls[p.index]
            at, end = book.position(c["line"]), book.position(c.get("end_line") or c["line"])
            if rep is not None and at is not None:
                same = end is not None and end[0] == at[0]
                call = {**c, "line": at[1], "end_line": end[1] if same else at[1],
                        "end_column": c.get("end_column") if same else None}
                calls.setdefault(at[0], []).append((ls._policy(rep, sess), call))
    ls.notebook_pairs[notebook_uri] = pairs
    if whole_calls:
        ls.notebook_converting.add(notebook_uri)
    else:
        ls.notebook_converting.discard(notebook_uri)
    traced = ls.notebook_traces.get(notebook_uri)
    if traced is not None and traced[0] != text_hash(book.text):
        ls.notebook_traces.pop(notebook_uri, None)  # the trace belongs to the code it ran
        traced = None
    for i, (_c, doc) in enumerate(cells):
        if doc is None:
            continue
        st = ls.cells.get(doc.uri) or DocState(doc.uri, path)
        ls.cells[doc.uri] = st
        st.version, st.lines = doc.version, list(doc.lines)
        codec = doc.position_codec
        conversions = [
            (rep, adapter.to_range(codec, st.lines, adapter.line_range(
                st.lines, c["line"], c["column"], c.get("end_line"), c.get("end_column"))))
            for rep, c in calls.get(i, ())
        ]
        st.diags = adapter.document_diagnostics(st.lines, codec, path, static=found.get(i, ()),
                                                conversions=conversions,
                                                trace=_cell_trace(traced[1], i) if traced else None)
        ls.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(doc.uri, [d for d, _, _ in st.diags], version=doc.version)
        )


async def check_pairs(ls, notebook_uri: str) -> list:
    """The notebook's conversions checked in the worker (the model files it names, as a script's
    are); each result is published on its converter call's cell. Out: the conversion reports."""
    return [await ls.check_pair(s, t) for s, t in ls.notebook_pairs.get(notebook_uri, ())]


async def trace(ls, notebook_uri: str) -> dict:
    """``convlint trace`` of the saved notebook in the worker; its findings are published on
    their cells. Out: the trace report dict."""
    from convlint.analyzers import defaults as D
    from convlint.analyzers.app import TraceRequest
    from convlint.analyzers.errors import ConvlintError
    from convlint.analyzers.report.findings import ScriptReport
    from convlint.analyzers.scripts.notebook import read_notebook

    path = to_fs_path(notebook_uri) or notebook_uri
    try:
        h = text_hash(read_notebook(path).text)  # the saved file is what the trace runs
    except ConvlintError:
        return {}
    s = ls.settings
    params = TraceRequest(path, cwd=ls.session(path).root or str(Path(path).parent),
                          atol=s.atol, rtol=s.rtol, use_tvm=s.tvm, python=s.python,
                          timeout=min(s.timeout, D.MAX_SERVER_TIMEOUT)).to_dict()
    rep = await ls.run_job("trace", params, f"convlint: tracing {Path(path).name}",
                           key=f"trace:{path}:{h}")
    if rep.get("kind") == "trace":
        ls.notebook_traces[notebook_uri] = (h, ScriptReport.from_dict(rep))
        check(ls, notebook_uri)
    return rep


def _cell_trace(rep, cell: int):
    """A trace report's findings that belong to ``cell``, as the cell sees them."""
    from convlint.analyzers.report.findings import ScriptReport

    mine = [f for f in list(rep.findings) + [f for c in rep.conversions for f in c.findings]
            if f.location.cell == cell]
    found = [g for g in (in_cell(f) for f in mine) if g is not None]
    return ScriptReport(rep.script, rep.verdict, tuple(found), kind="trace")


def close(ls, params: T.DidCloseNotebookDocumentParams) -> None:
    ls.notebook_pairs.pop(params.notebook_document.uri, None)
    ls.notebook_traces.pop(params.notebook_document.uri, None)
    ls.notebook_converting.discard(params.notebook_document.uri)
    for cell in params.cell_text_documents:
        ls.cells.pop(cell.uri, None)
        ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(cell.uri, []))


def in_cell(f):
    """A finding mapped by ``Notebook.map_report`` as its cell sees it: the location and every
    fix's edits in the cell's own lines; None for a finding with no cell (a run-level one)."""
    loc = f.location
    if loc.cell is None or not loc.cell_line:
        return None
    cell = loc.cell
    location = replace(loc, line=loc.cell_line, end_line=loc.cell_end_line or loc.cell_line)
    rep = f.repair
    if rep is not None and rep.edits:
        rep = replace(rep, edits=_cell_edits(rep.edits, cell))
    ev = f.evidence
    if isinstance(ev, dict) and isinstance(ev.get("fixes"), list):
        ev = {
            **ev,
            "fixes": [
                {**x, "edits": list(_cell_edits(x.get("edits") or (), cell))}
                for x in ev["fixes"]
                if isinstance(x, dict)
            ],
        }
    return f.with_(location=location, repair=rep, evidence=ev)


def _cell_edits(edits, cell: int) -> tuple:
    """The edits in the cell's lines; none when any of them is in another cell (or spans cells)."""
    out = tuple(
        {**e, "start": e["cell_start"], "end": e["cell_end"]}
        for e in edits
        if e.get("cell") == cell and "cell_start" in e
    )
    return out if len(out) == len(edits) else ()
