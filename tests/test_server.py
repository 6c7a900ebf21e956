"""The language server end to end: a real ``python -m convlint.server`` subprocess, driven over
stdio by pytest-lsp's client exactly as an editor would drive it."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from lsp_helpers import (
    CLEAN,
    FAULTY,
    code_actions,
    codes,
    command,
    diagnostics,
    open_doc,
    raw_notify,
    raw_request,
    start,
    stop,
    wait_for,
    workspace,
)
from lsprotocol import types as T
from pygls.exceptions import JsonRpcException

from convlint.analyzers.scripts.edits import TextEdit, apply

FAST = {"heavyChecks": True, "trustedExecution": False}
TRUSTED = {"heavyChecks": True, "trustedExecution": True, "tvm": False}


def _line(text: str, needle: str) -> int:
    return next(i for i, s in enumerate(text.splitlines()) if needle in s)


async def test_open_script_gets_exact_diagnostics_and_clean_twin_none(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **FAST)
    try:
        uri = open_doc(client, ws / "convert.py")
        ds = await diagnostics(client, uri, lambda ds: bool(ds))
        (d,) = [d for d in ds if d.code == "CL411"]
        ln = _line(FAULTY, "converter.optimizations")
        col = FAULTY.splitlines()[ln].index("[tf.lite.Optimize.DEFAULT]")
        assert d.range.start.line == ln and d.severity == T.DiagnosticSeverity.Error
        assert d.code_description.href.endswith("#cl411-tflite-weights-silently-int8")
        assert d.source == "convlint" and d.range.start.character <= col < d.range.end.character
        clean = open_doc(client, ws / "convert_clean.py")
        assert await diagnostics(client, clean) == []
    finally:
        await stop(client)


async def test_positions_on_lines_with_non_ascii_text_are_utf16_code_units(tmp_path):
    """The parser counts columns in UTF-8 bytes, Python strings in code points, VS Code in UTF-16
    units: a diagnostic, its quick fix and the conversion call after an emoji land where they
    should."""
    ws = workspace(tmp_path)
    line = 'note = "ünï 🙂"; converter.optimizations = [tf.lite.Optimize.DEFAULT]'
    text = FAULTY.replace("converter.optimizations = [tf.lite.Optimize.DEFAULT]", line)
    client = await start(tmp_path, ws, **FAST)
    try:
        uri = open_doc(client, ws / "convert.py", text)
        ds = await diagnostics(client, uri, lambda ds: "CL411" in codes(ds))
        (d,) = [d for d in ds if d.code == "CL411"]
        ln = _line(text, "converter.optimizations")
        py_col = line.index("converter.optimizations")
        utf16 = len(line[:py_col].encode("utf-16-le")) // 2
        assert utf16 == py_col + 1  # the emoji is two UTF-16 units
        assert d.range.start.line == ln and d.range.start.character == utf16
        assert d.range.end.character == len(line.encode("utf-16-le")) // 2
        actions = await client.text_document_code_action_async(T.CodeActionParams(
            T.TextDocumentIdentifier(uri), d.range, T.CodeActionContext([d])))
        fix = next(
            a
            for a in actions
            if isinstance(a, T.CodeAction) and a.kind == T.CodeActionKind.QuickFix
        )
        # the statement goes, the one before the semicolon stays
        (e,) = fix.edit.document_changes[0].edits
        assert (e.range.start.line, e.range.start.character) == (ln, utf16)
        assert (e.range.end.line, e.range.end.character) == (ln, len(line.encode("utf-16-le")) // 2)
    finally:
        await stop(client)


async def test_quick_fix_is_a_versioned_edit_that_clears_the_diagnostic(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **FAST)
    try:
        uri = open_doc(client, ws / "convert.py")
        ds = await diagnostics(client, uri, lambda ds: "CL411" in codes(ds))
        d = next(d for d in ds if d.code == "CL411")
        actions, fixes = await code_actions(client, uri, d)
        assert fixes and all(a.edit.document_changes[0].text_document.version == 1 for a in fixes)
        # lsprotocol's client reads a CodeAction that carries a command as a Command: match titles
        titles = {a.title for a in actions}
        assert {"convlint: run conversion check now", "convlint: show report"} <= titles
        fix = fixes[0]
        edits = [
            TextEdit(
                e.range.start.line + 1,
                e.range.start.character,
                e.range.end.line + 1,
                e.range.end.character,
                e.new_text,
            )
            for e in fix.edit.document_changes[0].edits
        ]
        new = apply(FAULTY, edits)
        client.text_document_did_change(
            T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(version=2, uri=uri),
                [T.TextDocumentContentChangeWholeDocument(new)],
            )
        )
        ds = await diagnostics(client, uri, lambda ds: "CL411" not in codes(ds))
        assert all(d.severity != T.DiagnosticSeverity.Error for d in ds)
    finally:
        await stop(client)


async def test_every_fix_is_a_quick_fix_the_preferred_one_first(tmp_path):
    """CL411 has a preferred rewrite (remove the optimizations: a float model) and an alternative
    (keep float16 weights): both are offered, the preferred one first and alone marked preferred;
    the alternative's edit, applied, clears CL411. The clean script is offered no quick fix."""
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **FAST)
    try:
        uri = open_doc(client, ws / "convert.py")
        ds = await diagnostics(client, uri, lambda ds: "CL411" in codes(ds))
        d = next(d for d in ds if d.code == "CL411")
        actions, fixes = await code_actions(client, uri, d)
        assert [a.is_preferred for a in fixes] == [True, False]
        assert "remove the optimizations" in fixes[0].title
        assert "keep float16 weights" in fixes[1].title
        alt = fixes[1].edit.document_changes[0]
        assert alt.text_document.version == 1
        edits = [TextEdit(e.range.start.line + 1, e.range.start.character, e.range.end.line + 1,
                          e.range.end.character, e.new_text) for e in alt.edits]
        new = apply(FAULTY, edits)
        assert "supported_types" in new and "Optimize.DEFAULT" in new
        client.text_document_did_change(
            T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(version=2, uri=uri),
                [T.TextDocumentContentChangeWholeDocument(new)],
            )
        )
        await diagnostics(client, uri, lambda ds: "CL411" not in codes(ds))

        clean = open_doc(client, ws / "clean.py", CLEAN)
        await diagnostics(client, clean)
        rng = T.Range(T.Position(0, 0), T.Position(len(CLEAN.splitlines()), 0))
        actions = await client.text_document_code_action_async(T.CodeActionParams(
            T.TextDocumentIdentifier(clean), rng, T.CodeActionContext([])))
        assert not [
            a
            for a in actions or []
            if isinstance(a, T.CodeAction) and a.kind == T.CodeActionKind.QuickFix
        ]
    finally:
        await stop(client)


async def test_bursts_of_changes_publish_for_the_newest_version(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **FAST)
    try:
        uri = open_doc(client, ws / "convert.py", FAULTY)
        await diagnostics(client, uri, lambda ds: "CL411" in codes(ds))
        for v in range(2, 31):  # alternate; the last text (version 30) is the clean one
            text = FAULTY if v % 2 else CLEAN
            client.text_document_did_change(
                T.DidChangeTextDocumentParams(
                    T.VersionedTextDocumentIdentifier(version=v, uri=uri),
                    [T.TextDocumentContentChangeWholeDocument(text)],
                )
            )
        await diagnostics(client, uri, lambda ds: ds == [])
        await asyncio.sleep(0.5)  # no result of an older version arrives afterwards
        assert list(client.diagnostics[uri]) == []
    finally:
        await stop(client)


async def test_settings_and_project_config(tmp_path):
    ws = workspace(tmp_path)
    (ws / "pyproject.toml").write_text(
        '[tool.convlint]\nignore = ["CL412"]\nseverity = {CL411 = "info"}\n'
    )
    client = await start(tmp_path, ws, **FAST, severity={"CL411": "warning"}, bogus=1)
    try:
        uri = open_doc(client, ws / "convert.py")
        ds = await diagnostics(client, uri, lambda ds: "CL411" in codes(ds))
        # the editor's severity override wins over the project's
        assert next(d for d in ds if d.code == "CL411").severity == T.DiagnosticSeverity.Warning
        client.workspace_did_change_configuration(
            T.DidChangeConfigurationParams({"convlint": {"enable": False}})
        )
        await diagnostics(client, uri, lambda ds: ds == [])
        client.workspace_did_change_configuration(
            T.DidChangeConfigurationParams({"convlint": {"enable": True, "severity": {}}})
        )
        ds = await diagnostics(client, uri, lambda ds: "CL411" in codes(ds))
        assert next(d for d in ds if d.code == "CL411").severity == T.DiagnosticSeverity.Information
    finally:
        await stop(client)


async def test_malformed_requests_get_errors_and_the_server_keeps_answering(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **FAST)
    try:
        uri = open_doc(client, ws / "convert.py")
        await diagnostics(client, uri, lambda ds: bool(ds))
        bad = [("textDocument/codeAction", {"textDocument": 5}),  # params that do not deserialize
               ("convlint/noSuchMethod", {}),  # unknown method
               ("workspace/executeCommand", {"command": "convlint.noSuchCommand", "arguments": []}),
               ("workspace/executeCommand", {"command": "convlint.checkPair", "arguments": [42]}),
               ("workspace/executeCommand", {"command": "convlint.showReport", "arguments": ["file:///nope.py"]}),
               # heavy checks are refused in an untrusted workspace, with a message
               ("workspace/executeCommand", {"command": "convlint.runCheck", "arguments": [uri]})]
        for i, (method, params) in enumerate(bad):
            with pytest.raises(JsonRpcException):
                await raw_request(client, method, params, f"bad-{i}")
        raw_notify(client, "textDocument/didChange", {"textDocument": "garbage"})
        status = await command(client, "convlint.status")
        assert status["version"] and status["settings"]["trusted"] is False
        assert any("trusted" in m.message for m in client.messages)
    finally:
        await stop(client)


# -- heavy checks in the worker ------------------------------------------------------------------

def _progress_messages(client) -> list:
    return [getattr(v, "message", None) or getattr(v, "title", None)
            for vs in client.progress_reports.values() for v in vs]


@pytest.mark.slow
async def test_save_runs_the_pair_check_with_progress_and_lands_on_the_converter_call(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **TRUSTED)
    try:
        uri = open_doc(client, ws / "convert.py")
        await diagnostics(client, uri, lambda ds: bool(ds))
        client.text_document_did_save(T.DidSaveTextDocumentParams(T.TextDocumentIdentifier(uri)))
        ds = await diagnostics(client, uri, lambda ds: "CL201" in codes(ds), timeout=240)
        call = _line(FAULTY, "from_keras_model")
        conv = [d for d in ds if d.data and d.data.get("origin") == "conversion"]
        assert {"CL100", "CL110", "CL201", "CL401"} <= codes(conv)
        assert all(d.range.start.line == call for d in conv)
        d201 = next(d for d in conv if d.code == "CL201")
        assert "project_conv" in d201.message
        rel = {r.location.uri.rsplit("/", 1)[-1]: r.message for r in d201.related_information}
        assert (
            "mobilenet.keras" in rel
            and "mobilenet.dynint8.tflite" in rel
            and "project_conv" in rel["mobilenet.keras"]
        )
        kinds = [getattr(v, "kind", None) for vs in client.progress_reports.values() for v in vs]
        assert kinds[0] == "begin" and "report" in kinds and kinds[-1] == "end"
        assert any(m and "localizing" in m for m in _progress_messages(client))
        states = [
            (st.state, getattr(st, "stage", None), getattr(st, "result", None))
            for st in client.statuses
        ]
        assert states[0][0] == "checking" and any(
            s == "checking" and g and "localizing" in g for s, g, _ in states
        )
        assert [r for s, _, r in states if s == "idle"] == ["divergent"]
        # the clean twin: the same check, no finding
        clean = open_doc(client, ws / "convert_clean.py")
        res = await command(client, "convlint.runCheck", clean)
        assert [r["verdict"] for r in res["reports"]] == ["equivalent"]
        assert await diagnostics(client, clean) == []
        # an edit that changes no model: the recheck is a cache hit
        client.text_document_did_save(T.DidSaveTextDocumentParams(T.TextDocumentIdentifier(uri)))
        shown = await command(client, "convlint.showReport", uri)
        assert os.path.isfile(shown["path"]) and client.shown_documents
        assert [r["kind"] for r in shown["report"]["reports"]] == ["script", "conversion"]
        # a second report never replaces the first
        again = await command(client, "convlint.showReport", uri)
        assert again["path"] != shown["path"] and os.path.isfile(shown["path"])
    finally:
        await stop(client)


async def _start_check_and_wait_for_progress(client, uri, msg_id):
    fut = asyncio.ensure_future(
        client.protocol.send_request_async(
            "workspace/executeCommand",
            T.ExecuteCommandParams("convlint.runCheck", [uri]),
            msg_id=msg_id,
        )
    )
    await wait_for(lambda: _running_token(client), 120, "a progress report of a running job")
    return fut


def _running_token(client):
    """The token of a job that has begun and reported and not ended (a cancelled job's late
    messages may still arrive under its own token)."""
    for t, vs in client.progress_reports.items():
        kinds = [getattr(v, "kind", "") for v in vs]
        if "begin" in kinds and "report" in kinds and "end" not in kinds:
            return t
    return None


@pytest.mark.slow
async def test_cancel_a_running_check_request_and_by_progress(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **TRUSTED)
    try:
        uri = open_doc(client, ws / "convert.py")
        await diagnostics(client, uri, lambda ds: bool(ds))
        fut = await _start_check_and_wait_for_progress(client, uri, "cancel-me")
        pid = (await command(client, "convlint.status"))["worker_pid"]
        client.protocol.notify("$/cancelRequest", T.CancelParams(id="cancel-me"))
        with pytest.raises(JsonRpcException):
            await asyncio.wait_for(fut, 30)
        await wait_for(lambda: not _alive(pid), 10, "the cancelled worker to stop")
        # work-done progress cancellation of a check started by a save (no request involved)
        client.progress_reports.clear()
        client.text_document_did_save(T.DidSaveTextDocumentParams(T.TextDocumentIdentifier(uri)))
        token = await wait_for(
            lambda: _running_token(client), 120, "a progress report of the save's check"
        )
        pid = (await command(client, "convlint.status"))["worker_pid"]
        client.protocol.notify(
            "window/workDoneProgress/cancel", T.WorkDoneProgressCancelParams(token)
        )
        await wait_for(
            lambda: any(getattr(v, "kind", "") == "end" for v in client.progress_reports[token]),
            30,
            "the cancelled progress to end",
        )
        await wait_for(lambda: not _alive(pid), 10, "the cancelled worker to stop")
        # work-done progress cancellation of a command request: the request gets its one answer
        client.progress_reports.clear()
        fut = await _start_check_and_wait_for_progress(client, uri, "cancel-by-progress")
        client.protocol.notify(
            "window/workDoneProgress/cancel", T.WorkDoneProgressCancelParams(_running_token(client))
        )
        with pytest.raises(JsonRpcException):
            await asyncio.wait_for(fut, 30)
        # the server still works, with a new worker
        res = await command(client, "convlint.runCheck", uri)
        assert res["reports"][0]["verdict"] == "divergent"
    finally:
        await stop(client)


def _alive(pid) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except (ProcessLookupError, TypeError):
        return False


@pytest.mark.slow
async def test_worker_killed_mid_check_or_aborting_becomes_a_finding(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **TRUSTED)
    try:
        uri = open_doc(client, ws / "convert.py")
        await diagnostics(client, uri, lambda ds: bool(ds))
        fut = await _start_check_and_wait_for_progress(client, uri, "to-be-killed")
        pid = (await command(client, "convlint.status"))["worker_pid"]
        os.kill(pid, signal.SIGKILL)
        res = await asyncio.wait_for(fut, 60)
        rep = res["reports"][0]
        assert rep["verdict"] == "crash" and rep["findings"][0]["rule"] == "CL014"
        assert "SIGKILL" in rep["findings"][0]["message"]
        ds = await diagnostics(client, uri, lambda ds: "CL014" in codes(ds))
        assert next(d for d in ds if d.code == "CL014").range.start.line == _line(
            FAULTY, "from_keras_model"
        )
        # a native abort() in a job (the crash-isolation hook of the worker)
        rep = await command(client, "convlint.testJob", {"kind": "abort"})
        assert rep["verdict"] == "crash" and "SIGABRT" in rep["findings"][0]["message"]
        status = await command(client, "convlint.status")
        assert status["worker_crashes"] == 2
        # the next check gets a fresh worker; the crash was not cached
        res = await command(client, "convlint.runCheck", uri)
        assert res["reports"][0]["verdict"] == "divergent"
        assert (await command(client, "convlint.status"))["worker_pid"] not in (pid, None)
    finally:
        await stop(client)


@pytest.mark.slow
async def test_changed_model_file_rechecks_its_pair(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **TRUSTED)
    try:
        uri = open_doc(client, ws / "convert.py")
        await diagnostics(client, uri, lambda ds: bool(ds))
        client.text_document_did_save(T.DidSaveTextDocumentParams(T.TextDocumentIdentifier(uri)))
        await diagnostics(client, uri, lambda ds: "CL100" in codes(ds), timeout=240)
        target = ws / "models" / "mobilenet.dynint8.tflite"
        # re-converted in float
        target.write_bytes((ws / "models" / "mobilenet.tflite").read_bytes())
        client.workspace_did_change_watched_files(T.DidChangeWatchedFilesParams(
            [T.FileEvent(target.as_uri(), T.FileChangeType.Changed)]))
        ds = await diagnostics(client, uri, lambda ds: "CL100" not in codes(ds), timeout=240)
        assert codes(ds) == {"CL411"}  # the script still asks for Optimize.DEFAULT
    finally:
        await stop(client)


async def test_config_error_is_a_diagnostic_on_the_config_file(tmp_path):
    ws = workspace(tmp_path)
    (ws / "convlint.toml").write_text('select = "CL4"\n')  # must be a list
    client = await start(tmp_path, ws, **FAST)
    try:
        ds = await diagnostics(client, (ws / "convlint.toml").as_uri(), lambda ds: bool(ds))
        assert ds[0].code == "CL001" and "select" in ds[0].message
        # the server keeps working: scripts still get their diagnostics
        uri = open_doc(client, ws / "convert.py")
        await diagnostics(client, uri, lambda ds: "CL411" in codes(ds))
    finally:
        await stop(client)


@pytest.mark.slow
async def test_config_pairs_are_checked_and_land_on_the_config_line(tmp_path):
    ws = workspace(tmp_path)
    toml = (
        '[[pairs]]\nsource = "models/mobilenet.keras"\ntarget = "models/mobilenet.tflite"\n\n'
        '[[pairs]]\nsource = "models/mobilenet.keras"\ntarget = "models/mobilenet.dynint8.tflite"\n'
    )
    (ws / "convlint.toml").write_text(toml)
    client = await start(tmp_path, ws, **TRUSTED)
    try:
        res = await command(client, "convlint.checkWorkspace")
        assert sorted(r["verdict"] for r in res["reports"]) == ["divergent", "equivalent"]
        ds = await diagnostics(
            client, (ws / "convlint.toml").as_uri(), lambda ds: "CL100" in codes(ds)
        )
        assert {d.range.start.line for d in ds} == {_line(toml, "mobilenet.dynint8.tflite")}
    finally:
        await stop(client)


@pytest.mark.slow
async def test_trace_command_runs_the_script_in_the_worker_and_lands_on_the_call(tmp_path):
    from conftest import ROOT

    ws = workspace(tmp_path)
    script = ws / "export.py"
    text = (ROOT / "fixtures" / "scripts" / "torch_training.py").read_text()
    script.write_text(text)
    client = await start(tmp_path, ws, **TRUSTED)
    try:
        uri = open_doc(client, script)
        await diagnostics(client, uri, lambda ds: "CL430" in codes(ds))
        rep = await command(client, "convlint.trace", uri)
        assert rep["kind"] == "trace" and [c["verdict"] for c in rep["conversions"]] == [
            "divergent"
        ]
        ds = await diagnostics(
            client, uri, lambda ds: any(d.data and d.data.get("origin") == "trace" for d in ds)
        )
        call = _line(text, "torch.onnx.export")
        assert {d.range.start.line for d in ds if d.data.get("origin") == "trace"} == {call}
        # the script ran in the workspace; what it writes goes to the cache (issue 25), not beside
        # it
        assert not (ws / "model.onnx").exists()
    finally:
        await stop(client)


@pytest.mark.slow
async def test_repair_command_writes_a_new_verified_file_and_says_where(tmp_path):
    ws = workspace(tmp_path)
    models = ws / "models"
    before = {p.name: p.read_bytes() for p in models.iterdir()}
    client = await start(tmp_path, ws, **TRUSTED)
    try:
        uri = open_doc(client, ws / "convert.py")
        await diagnostics(client, uri, lambda ds: bool(ds))
        res = await command(client, "convlint.repair", uri)
        outs = [
            f["repair"]
            for f in res["reports"][0]["findings"]
            if f.get("repair") and f["repair"].get("output")
        ]
        assert outs and outs[0]["verified"] is True
        out = outs[0]["output"]
        assert os.path.isfile(out) and os.path.basename(out) not in before
        # inputs untouched
        assert {p.name: p.read_bytes() for p in models.iterdir() if p.name in before} == before
        await wait_for(
            lambda: any(out in m.message and "verified" in m.message for m in client.messages),
            10,
            "the message naming the repaired file",
        )
    finally:
        await stop(client)


async def test_a_hung_worker_is_replaced_and_reported(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **TRUSTED, timeout=1.5)
    try:
        rep = await command(
            client, "convlint.testJob", {"kind": "sleep", "params": {"seconds": 30}}, timeout=30
        )
        assert rep["verdict"] == "crash" and rep["findings"][0]["rule"] == "CL014"
        assert (
            "hung" in rep["findings"][0]["message"] and "sleeping" in rep["findings"][0]["message"]
        )
        rep = await command(
            client, "convlint.testJob", {"kind": "sleep", "params": {"seconds": 0.2}}, timeout=30
        )
        assert rep == {"slept": 0.2}  # a fresh worker took the next job
    finally:
        await stop(client)


@pytest.mark.slow
async def test_identical_checks_asked_together_run_once(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **TRUSTED)
    try:
        pair = {
            "source": str(ws / "models" / "mobilenet.keras"),
            "target": str(ws / "models" / "mobilenet.dynint8.tflite"),
        }
        a, b = await asyncio.gather(
            command(client, "convlint.checkPair", pair), command(client, "convlint.checkPair", pair)
        )
        assert a == b and a["verdict"] == "divergent"
        assert (await command(client, "convlint.status"))["jobs_started"] == 1
    finally:
        await stop(client)


def test_serve_over_tcp_answers_initialize(tmp_path):
    import json
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    p = subprocess.Popen([sys.executable, "-m", "convlint", "serve", "--tcp", f"127.0.0.1:{port}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=10)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("the server never listened")
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {"processId": None, "rootUri": None, "capabilities": {}},
            }
        ).encode()
        conn.sendall(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        data = b""
        while b"serverInfo" not in data or not data.rstrip().endswith(b"}"):
            chunk = conn.recv(65536)
            assert chunk, data
            data += chunk
        reply = json.loads(data.split(b"\r\n\r\n", 1)[1])
        assert reply["id"] == 1 and reply["result"]["serverInfo"]["name"] == "convlint"
        assert "executeCommandProvider" in reply["result"]["capabilities"]
        conn.close()
    finally:
        p.kill()
        p.wait()


def test_serve_with_a_bad_or_busy_port_is_a_clear_error(tmp_path):
    import socket
    import subprocess
    import sys

    for bad in ("notaport", "0", "host:99999"):
        p = subprocess.run([sys.executable, "-m", "convlint", "serve", "--tcp", bad],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 2 and "Traceback" not in p.stderr and "PORT" in p.stderr
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        p = subprocess.run(
            [sys.executable, "-m", "convlint", "serve", "--tcp", str(s.getsockname()[1])],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert p.returncode == 2 and "Traceback" not in p.stderr and "cannot listen" in p.stderr


@pytest.mark.slow
async def test_train_check_command_lands_training_findings_on_the_lines_that_set_them(tmp_path):
    import sys

    from conftest import ROOT

    sys.path.insert(0, str(ROOT / "bench" / "training"))
    import programs

    ws = workspace(tmp_path)
    case = next(c for c in programs.cases() if c.name == "t09_deep_sigmoid")
    bad, _ = programs.sources(case)
    script = ws / "train.py"
    script.write_text(bad)
    client = await start(tmp_path, ws, **FAST)
    try:
        uri = open_doc(client, script)
        await diagnostics(client, uri, lambda ds: True)
        with pytest.raises(JsonRpcException):  # untrusted: nothing runs
            await command(client, "convlint.trainCheck", uri)
        client.workspace_did_change_configuration(T.DidChangeConfigurationParams(TRUSTED))
        rep = await command(client, "convlint.trainCheck", uri)
        assert rep["kind"] == "training" and rep["verdict"] == "faulty"
        ds = await diagnostics(
            client, uri, lambda ds: any(d.data and d.data.get("origin") == "training" for d in ds)
        )
        tr = [d for d in ds if d.data.get("origin") == "training"]
        vanish = next(d for d in tr if d.code == "CL517")
        # the line that built the layer
        assert vanish.range.start.line == _line(bad, "('hidden1', nn.Linear")
        assert "relu" in vanish.message and vanish.data["layer"] == "hidden1"
        assert any(s.state == "idle" and s.result == "faulty" for s in client.statuses)
    finally:
        await stop(client)
