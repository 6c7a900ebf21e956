"""LSP 3.17 notebook documents end to end through a real LSP client (pytest-lsp): the cells are
one script (a model loaded in one cell and converted in another), diagnostics are published per
cell URI, a quick fix edits the cell it belongs to, and a cell edit that moves the converter's
settings to another cell moves the diagnostic with them."""

from __future__ import annotations

from lsp_helpers import code_actions, codes, diagnostics, start, stop, workspace
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
