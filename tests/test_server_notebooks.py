"""LSP 3.17 notebook documents end to end through a real LSP client (pytest-lsp): the cells are
one script (a model loaded in one cell and converted in another), diagnostics are published per
cell URI, a quick fix edits the cell it belongs to, and a cell edit that moves the converter's
settings to another cell moves the diagnostic with them."""

from __future__ import annotations

import pytest
from lsp_helpers import code_actions, codes, diagnostics, start, stop, wait_for, workspace
from lsprotocol import types as T

FAST = {"watchFiles": False, "heavyChecks": False}
LOAD = (
    "import keras\nimport tensorflow as tf\n\nmodel = "
    'keras.models.load_model("models/mobilenet.keras")\n'
)
NOTE = "# Convert to TFLite\n"
CONVERT = (
    "converter = tf.lite.TFLiteConverter.from_keras_model(model)\n"
    "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n"
    "tflite_model = converter.convert()\n"
    'with open("models/mobilenet.dynint8.tflite", "wb") as f:\n'
    "    f.write(tflite_model)\n"
)


def cell_uri(nb, i: int) -> str:
    return f"vscode-notebook-cell:{nb.as_posix()}#C{i}"


def open_notebook(client, nb, cells) -> list[str]:
    """Open a notebook of (kind, language, text) cells; the cells' URIs."""
    uris = [cell_uri(nb, i) for i in range(len(cells))]
    client.notebook_document_did_open(
        T.DidOpenNotebookDocumentParams(
            T.NotebookDocument(
                nb.as_uri(),
                "jupyter-notebook",
                1,
                [T.NotebookCell(kind, u) for (kind, _, _), u in zip(cells, uris, strict=True)],
            ),
            [
                T.TextDocumentItem(u, lang, 1, text)
                for (_, lang, text), u in zip(cells, uris, strict=True)
            ],
        )
    )
    return uris


def edit_cells(client, nb, version: int, texts: dict[str, str]) -> None:
    client.notebook_document_did_change(
        T.DidChangeNotebookDocumentParams(
            T.VersionedNotebookDocumentIdentifier(version, nb.as_uri()),
            T.NotebookDocumentChangeEvent(
                cells=T.NotebookDocumentCellChanges(
                    text_content=[
                        T.NotebookDocumentCellContentChanges(
                            T.VersionedTextDocumentIdentifier(version, u),
                            [T.TextDocumentContentChangeWholeDocument(t)],
                        )
                        for u, t in texts.items()
                    ]
                )
            ),
        )
    )


CODE, MARKUP = T.NotebookCellKind.Code, T.NotebookCellKind.Markup


async def test_a_notebook_is_one_script_with_diagnostics_and_quick_fixes_per_cell(tmp_path):
    ws = workspace(tmp_path)
    nb = ws / "convert.ipynb"
    client = await start(tmp_path, ws, **FAST)
    try:
        cells = [(CODE, "python", LOAD), (MARKUP, "markdown", NOTE), (CODE, "python", CONVERT)]
        load, _note, conv = open_notebook(client, nb, cells)
        ds = await diagnostics(client, conv, lambda ds: "CL411" in codes(ds))
        (d,) = [d for d in ds if d.code == "CL411"]
        assert d.range.start.line == 1  # the cell's own second line: converter.optimizations
        assert "CL411" not in codes(await diagnostics(client, load))

        # both fixes edit the converting cell, the preferred one first
        _, fixes = await code_actions(client, conv, d)
        assert [a.is_preferred for a in fixes] == [True, False]
        for a in fixes:
            (change,) = a.edit.document_changes
            assert change.text_document.uri == conv
            assert all(e.range.start.line in (1, 2) for e in change.edits)

        # move the converter into the first cell: the diagnostic moves with it
        edit_cells(client, nb, 2, {load: LOAD + CONVERT, conv: "print('done')\n"})
        ds = await diagnostics(client, load, lambda ds: "CL411" in codes(ds))
        n = len(LOAD.splitlines())
        assert next(d for d in ds if d.code == "CL411").range.start.line == n + 1
        await diagnostics(client, conv, lambda ds: "CL411" not in codes(ds))

        client.notebook_document_did_close(
            T.DidCloseNotebookDocumentParams(
                T.NotebookDocumentIdentifier(nb.as_uri()),
                [T.TextDocumentIdentifier(u) for u in (load, _note, conv)],
            )
        )
        await diagnostics(client, load, lambda ds: not ds)
    finally:
        await stop(client)


async def test_a_clean_notebook_publishes_no_finding_on_any_cell(tmp_path):
    """The clean twin: the same cells without Optimize.DEFAULT."""
    ws = workspace(tmp_path)
    nb = ws / "clean.ipynb"
    client = await start(tmp_path, ws, **FAST)
    try:
        clean = CONVERT.replace(
            "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n", ""
        ).replace("dynint8.tflite", "tflite")
        uris = open_notebook(client, nb, [(CODE, "python", LOAD), (CODE, "python", clean)])
        for u in uris:
            ds = await diagnostics(client, u)
            assert not [
                d
                for d in ds
                if d.severity in (T.DiagnosticSeverity.Error, T.DiagnosticSeverity.Warning)
            ]
    finally:
        await stop(client)


# heavy checks in the worker (TF or torch): 35-60 s a test, so marked bench, outside `make test`;
# run them with `pytest -m bench tests/test_server_notebooks.py`
HEAVY = {"watchFiles": False, "heavyChecks": True, "trustedExecution": True, "tvm": False}


def save_notebook(client, nb) -> None:
    client.notebook_document_did_save(
        T.DidSaveNotebookDocumentParams(T.NotebookDocumentIdentifier(nb.as_uri()))
    )


@pytest.mark.bench
async def test_saving_a_notebook_checks_its_conversion_and_lands_on_the_converting_cell(tmp_path):
    """Heavy checks for a notebook: on save, the pair its cells name (mobilenet.keras ->
    mobilenet.dynint8.tflite) is checked in the worker, and the conversion's findings land on the
    converter call in the cell that holds it (its first line), none on the other cells."""
    ws = workspace(tmp_path)
    nb = ws / "convert.ipynb"
    client = await start(tmp_path, ws, **HEAVY)
    try:
        cells = [(CODE, "python", LOAD), (MARKUP, "markdown", NOTE), (CODE, "python", CONVERT)]
        load, _note, conv = open_notebook(client, nb, cells)
        await diagnostics(client, conv, lambda ds: "CL411" in codes(ds))
        save_notebook(client, nb)
        ds = await diagnostics(client, conv, lambda ds: "CL201" in codes(ds), timeout=240)
        mine = [d for d in ds if d.data and d.data.get("origin") == "conversion"]
        assert {"CL201"} <= codes(mine) and all(d.range.start.line == 0 for d in mine)
        assert not [d for d in await diagnostics(client, load)
                    if d.data and d.data.get("origin") == "conversion"]
    finally:
        await stop(client)


@pytest.mark.bench
async def test_saving_a_clean_notebook_checks_its_conversion_and_finds_nothing(tmp_path):
    """The clean twin: the float conversion (mobilenet.tflite) is checked on save, equivalent."""
    ws = workspace(tmp_path)
    nb = ws / "clean.ipynb"
    client = await start(tmp_path, ws, **HEAVY)
    try:
        clean = CONVERT.replace(
            "converter.optimizations = [tf.lite.Optimize.DEFAULT]\n", ""
        ).replace("dynint8.tflite", "tflite")
        _, conv = open_notebook(client, nb, [(CODE, "python", LOAD), (CODE, "python", clean)])
        await diagnostics(client, conv)
        save_notebook(client, nb)
        await wait_for(lambda: [r for st in client.statuses
                                if (r := getattr(st, "result", None) or (st.get("result")
                                    if isinstance(st, dict) else None))],
                       240, "the check's result")
        results = [getattr(st, "result", None) or (st.get("result") if isinstance(st, dict)
                   else None) for st in client.statuses]
        assert [r for r in results if r] == ["equivalent"]
        ds = await diagnostics(client, conv)
        assert not [d for d in ds if d.data and d.data.get("origin") == "conversion"]
    finally:
        await stop(client)


@pytest.mark.bench
async def test_trace_on_save_puts_a_notebook_s_trace_findings_on_their_cells(tmp_path):
    """``traceOnSave``: the saved notebook is traced in the worker (its code cells as one script)
    and the conversion's findings land on the converter call's cell and line; an edit of the
    code drops them (the trace belongs to the code it ran), the static ones stay."""
    import json

    from test_notebooks import SCRIPTS, notebook_of

    ws = tmp_path / "ws"
    ws.mkdir()
    nb = ws / "export.ipynb"
    where = notebook_of(SCRIPTS / "torch_training.py", nb)
    cells = []
    for c in json.loads(nb.read_text())["cells"]:
        src = c["source"] if isinstance(c["source"], str) else "".join(c["source"])
        code = c["cell_type"] == "code"
        cells.append((CODE if code else MARKUP, "python" if code else "markdown", src))
    client = await start(tmp_path, ws, **HEAVY, traceOnSave=True)
    try:
        uris = open_notebook(client, nb, cells)
        (cell, line), (scell, _) = where[16], where[17]
        await diagnostics(client, uris[scell], lambda ds: "CL430" in codes(ds))

        def traced(ds):
            return [d for d in ds if d.data and d.data.get("origin") == "trace"]

        save_notebook(client, nb)
        ds = await diagnostics(client, uris[cell], lambda ds: bool(traced(ds)), timeout=300)
        assert any(d.range.start.line == line - 1 for d in traced(ds)), traced(ds)
        for i, (kind, _, _) in enumerate(cells):
            if kind == MARKUP:
                assert not await diagnostics(client, uris[i])
        # the code changes: the trace's findings go, the static rule's stay
        edit_cells(client, nb, 2, {uris[cell]: cells[cell][2] + "\nprint('edited')\n"})
        await diagnostics(client, uris[cell], lambda ds: not traced(ds))
        assert "CL430" in codes(await diagnostics(client, uris[scell]))
    finally:
        await stop(client)
