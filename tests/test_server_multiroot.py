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
