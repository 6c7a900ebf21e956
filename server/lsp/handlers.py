"""The language server's routing table: one handler per LSP method (ruff's ``server/api``).

Each handler translates its params and calls the server's scheduling methods (``server.py``);
the state they change lives in the session (``session.py``) and only the event loop changes it.
``register`` binds ``ROUTES`` to a server; the workspace commands are bound by ``commands``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from lsprotocol import types as T
from pygls.uris import to_fs_path

from convlint.server.lsp import commands, notebooks
from convlint.server.lsp import settings as S
from convlint.server.lsp.session import CONFIG_NAMES, MODEL_GLOB, MODEL_SUFFIXES

if TYPE_CHECKING:
    from convlint.server.lsp.server import ConvlintServer

log = logging.getLogger("convlint.server")


def initialize(ls: ConvlintServer, params: T.InitializeParams):
    ls.set_folder_options(params.initialization_options)  # a folder's own settings, by folder
    ls.settings, problems = S.parse(params.initialization_options)
    ls.jobs.timeout = ls.settings.timeout
    for p in problems:
        log.warning(p)


async def initialized(ls: ConvlintServer, params: T.InitializedParams):
    ls.load_config()
    ls.publish_config()
    caps = ls.client_capabilities.workspace
    dyn = (
        caps
        and caps.did_change_watched_files
        and caps.did_change_watched_files.dynamic_registration
    )
    if dyn and ls.settings.watch_files:
        watchers = [
            T.FileSystemWatcher(glob_pattern=MODEL_GLOB),
            *[T.FileSystemWatcher(glob_pattern=f"**/{n}") for n in CONFIG_NAMES],
        ]
        try:
            await ls.client_register_capability_async(
                T.RegistrationParams(
                    [
                        T.Registration(
                            "convlint-watch",
                            T.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                            T.DidChangeWatchedFilesRegistrationOptions(watchers),
                        )
                    ]
                )
            )
        except Exception as e:  # a client that cannot watch files: model changes go unseen
            log.warning("file watcher registration failed: %s", e)


async def shutdown(ls: ConvlintServer, params):
    await ls.jobs.shutdown()


def did_open(ls: ConvlintServer, params: T.DidOpenTextDocumentParams):
    ls.schedule_static(params.text_document.uri)


def did_change(ls: ConvlintServer, params: T.DidChangeTextDocumentParams):
    if ls.settings.run == "onType":
        ls.schedule_static(params.text_document.uri)


async def did_save(ls: ConvlintServer, params: T.DidSaveTextDocumentParams):
    uri = params.text_document.uri
    st = ls.doc_state(uri)
    ls._static_once(st)
    if ls.settings.heavy_allowed and st.report is not None:
        await ls.check_document(uri)
        if ls.settings.trace_on_save and st.calls:
            await ls.trace_document(uri)


def did_close(ls: ConvlintServer, params: T.DidCloseTextDocumentParams):
    uri = params.text_document.uri
    st = ls.docs.pop(uri, None)
    if st is not None:
        from convlint.analyzers.scripts import reparse

        reparse.forget(st.path)
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri, []))


def notebook_did_open(ls: ConvlintServer, params: T.DidOpenNotebookDocumentParams):
    notebooks.check(ls, params.notebook_document.uri)


def notebook_did_change(ls: ConvlintServer, params: T.DidChangeNotebookDocumentParams):
    if ls.settings.run == "onType":
        notebooks.check(ls, params.notebook_document.uri)


async def notebook_did_save(ls: ConvlintServer, params: T.DidSaveNotebookDocumentParams):
    uri = params.notebook_document.uri
    notebooks.check(ls, uri)
    if ls.settings.heavy_allowed:
        await notebooks.check_pairs(ls, uri)
        if ls.settings.trace_on_save and uri in ls.notebook_converting:
            await notebooks.trace(ls, uri)


def notebook_did_close(ls: ConvlintServer, params: T.DidCloseNotebookDocumentParams):
    notebooks.close(ls, params)


def did_change_configuration(ls: ConvlintServer, params: T.DidChangeConfigurationParams):
    ls.set_folder_options(params.settings)
    ls.settings, problems = S.parse(params.settings, ls.settings)
    problems += ls.apply_settings()
    ls.jobs.timeout = ls.settings.timeout
    for p in problems:
        ls.log(f"convlint: {p}", T.MessageType.Warning)
    recheck(ls)


def did_change_workspace_folders(ls: ConvlintServer, params: T.DidChangeWorkspaceFoldersParams):
    """A folder added mid-session gets its Session, a removed one loses it; open documents are
    checked again with the session of the folder that now holds them."""
    added, removed = ls.update_folders()
    if added or removed:
        ls.log(f"convlint: workspace folders added {added}, removed {removed}")
        recheck(ls)


def did_change_watched_files(ls: ConvlintServer, params: T.DidChangeWatchedFilesParams):
    paths = {str(Path(to_fs_path(c.uri) or c.uri).resolve()) for c in params.changes}
    if any(Path(p).name in CONFIG_NAMES for p in paths):
        ls.load_config()
        recheck(ls)
    models = {p for p in paths if p.endswith(MODEL_SUFFIXES) or Path(p).is_dir()}
    for p in models:
        ls.results = {k: v for k, v in ls.results.items() if p not in k}
    if models:
        ls.on_models_changed(models)


def progress_cancel(ls: ConvlintServer, params: T.WorkDoneProgressCancelParams):
    task = ls.progress_tasks.pop(str(params.token), None)
    if task is None:
        return
    # a request's task: cancel the request, so that the client gets its one response
    msg_id = next((m for m, t in ls.protocol.request_tasks.items() if t is task), None)
    if msg_id is not None:
        ls.protocol.cancel_request(msg_id)
    else:
        task.cancel()


def code_action(ls: ConvlintServer, params: T.CodeActionParams):
    return commands.code_actions(ls, params)


def recheck(ls: ConvlintServer) -> None:
    """Every open script and notebook, and the configs, again (the config or settings changed)."""
    for uri in list(ls.docs):
        ls.schedule_static(uri)
    for uri in list(ls.workspace.notebook_documents):
        notebooks.check(ls, uri)
    ls.publish_config()


# method -> (handler, registration options)
ROUTES = {
    T.INITIALIZE: (initialize, None),
    T.INITIALIZED: (initialized, None),
    T.SHUTDOWN: (shutdown, None),
    T.TEXT_DOCUMENT_DID_OPEN: (did_open, None),
    T.TEXT_DOCUMENT_DID_CHANGE: (did_change, None),
    T.TEXT_DOCUMENT_DID_SAVE: (did_save, T.SaveOptions(include_text=False)),
    T.TEXT_DOCUMENT_DID_CLOSE: (did_close, None),
    T.NOTEBOOK_DOCUMENT_DID_OPEN: (notebook_did_open, None),
    T.NOTEBOOK_DOCUMENT_DID_CHANGE: (notebook_did_change, None),
    T.NOTEBOOK_DOCUMENT_DID_SAVE: (notebook_did_save, None),
    T.NOTEBOOK_DOCUMENT_DID_CLOSE: (notebook_did_close, None),
    T.WORKSPACE_DID_CHANGE_CONFIGURATION: (did_change_configuration, None),
    T.WORKSPACE_DID_CHANGE_WATCHED_FILES: (did_change_watched_files, None),
    T.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS: (did_change_workspace_folders, None),
    T.WINDOW_WORK_DONE_PROGRESS_CANCEL: (progress_cancel, None),
    T.TEXT_DOCUMENT_CODE_ACTION: (
        code_action,
        T.CodeActionOptions(code_action_kinds=[T.CodeActionKind.QuickFix, T.CodeActionKind.Source]),
    ),
}


def register(ls: ConvlintServer) -> None:
    for method, (handler, options) in ROUTES.items():
        ls.feature(method, options)(handler)
    commands.register(ls)
