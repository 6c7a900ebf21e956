"""A multi-root workspace end to end through a real LSP client (pytest-lsp): one session per
workspace folder, each with its own config (pyproject.toml / convlint.toml) and its own settings
(the client's per-folder ``folders`` settings); a script is checked with its own folder's."""

from __future__ import annotations

from lsp_helpers import FAULTY, codes, diagnostics, open_doc, start, stop
from lsprotocol import types as T

FAST = {"watchFiles": False, "heavyChecks": False}


def folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for f in (a, b):
        f.mkdir()
        (f / "convert.py").write_text(FAULTY)
    (a / "pyproject.toml").write_text('[tool.convlint]\nignore = ["CL411"]\n')  # a's own config
    return a, b


async def test_each_folder_checks_its_scripts_with_its_own_config_and_settings(tmp_path):
    a, b = folders(tmp_path)
    options = {**FAST, "folders": {b.as_uri(): {"severity": {"CL411": "info"}}}}
    client = await start(tmp_path, a, roots=[a, b], **options)
    try:
        ua, ub = open_doc(client, a / "convert.py"), open_doc(client, b / "convert.py")
        ds_b = await diagnostics(client, ub, lambda ds: "CL411" in codes(ds))
        (d,) = [d for d in ds_b if d.code == "CL411"]
        assert d.severity == T.DiagnosticSeverity.Information  # b's settings, not a's config
        ds_a = await diagnostics(client, ua)
        assert "CL411" not in codes(ds_a)  # a's config ignores it

        # the editor changes b's own settings: only b's script follows them
        client.workspace_did_change_configuration(
            T.DidChangeConfigurationParams(
                {"convlint": {**FAST, "folders": {str(b): {"severity": {"CL411": "warning"}}}}}
            )
        )
        ds_b = await diagnostics(
            client,
            ub,
            lambda ds: any(
                d.code == "CL411" and d.severity == T.DiagnosticSeverity.Warning for d in ds
            ),
        )
        ds_a = await diagnostics(client, ua)
        assert "CL411" not in codes(ds_a)
    finally:
        await stop(client)


async def test_without_folder_settings_both_folders_follow_the_editor_settings(tmp_path):
    """The clean twin: no per-folder settings; b (no config) reports CL411 at its default
    severity, a still ignores it through its own config."""
    a, b = folders(tmp_path)
    client = await start(tmp_path, a, roots=[a, b], **FAST)
    try:
        ua, ub = open_doc(client, a / "convert.py"), open_doc(client, b / "convert.py")
        ds_b = await diagnostics(client, ub, lambda ds: "CL411" in codes(ds))
        assert (
            next(d for d in ds_b if d.code == "CL411").severity != T.DiagnosticSeverity.Information
        )
        assert "CL411" not in codes(await diagnostics(client, ua))
    finally:
        await stop(client)


def _folders_changed(client, added=(), removed=()):
    client.workspace_did_change_workspace_folders(T.DidChangeWorkspaceFoldersParams(
        T.WorkspaceFoldersChangeEvent(
            added=[T.WorkspaceFolder(f.as_uri(), f.name) for f in added],
            removed=[T.WorkspaceFolder(f.as_uri(), f.name) for f in removed])))


async def test_a_folder_added_mid_session_gets_its_session_and_loses_it_when_removed(tmp_path):
    """``workspace/didChangeWorkspaceFolders``: a's script is first checked with b's session (a is
    not a folder yet: CL411 reported); once a is added, with a's own config (CL411 ignored); once a
    is removed again, with b's (CL411 back)."""
    a, b = folders(tmp_path)
    client = await start(tmp_path, b, roots=[b], **FAST)
    try:
        ua = open_doc(client, a / "convert.py")
        await diagnostics(client, ua, lambda ds: "CL411" in codes(ds))
        _folders_changed(client, added=[a])
        await diagnostics(client, ua, lambda ds: "CL411" not in codes(ds))
        _folders_changed(client, removed=[a])
        await diagnostics(client, ua, lambda ds: "CL411" in codes(ds))
    finally:
        await stop(client)


async def test_a_folder_added_without_a_config_keeps_the_defaults(tmp_path):
    """The clean twin: an added folder with no config of its own checks with the defaults (CL411
    still reported), and the first folder's script is unchanged."""
    a, b = folders(tmp_path)
    (a / "pyproject.toml").unlink()
    client = await start(tmp_path, b, roots=[b], **FAST)
    try:
        ua, ub = open_doc(client, a / "convert.py"), open_doc(client, b / "convert.py")
        await diagnostics(client, ua, lambda ds: "CL411" in codes(ds))
        client.diagnostics.pop(ua, None)
        _folders_changed(client, added=[a])
        assert "CL411" in codes(await diagnostics(client, ua))
        assert "CL411" in codes(await diagnostics(client, ub))
    finally:
        await stop(client)
