"""The peer of the server's start-up benchmark: the smallest pygls 2 server that answers an
editor's first steps as convlint does (initialize, then one diagnostic published for an opened
document), run as ``python bench/server/minimal_pygls.py`` over stdio."""

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer

server = LanguageServer("minimal", "0")


@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: LanguageServer, params: T.DidOpenTextDocumentParams) -> None:
    diag = T.Diagnostic(
        range=T.Range(T.Position(0, 0), T.Position(0, 1)), message="first line", source="minimal"
    )
    ls.text_document_publish_diagnostics(
        T.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[diag])
    )


if __name__ == "__main__":
    server.start_io()
