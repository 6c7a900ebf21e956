"""A soak test of the language server (issue 27): thousands of edits of a conversion script,
documents opened and closed, background jobs cancelled mid-way. The server's memory stays flat,
the last diagnostics belong to the last text, and every request gets exactly one answer."""

import asyncio
import itertools

import pytest
from lsp_helpers import (
    CLEAN,
    FAULTY,
    codes,
    command,
    diagnostics,
    open_doc,
    start,
    stop,
    wait_for,
    workspace,
)
from lsprotocol import types as T
from pygls.exceptions import JsonRpcException

TRUSTED = {"heavyChecks": True, "trustedExecution": True, "tvm": False}
EDITS = 5000


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))


async def _server_pid(client) -> int:
    return (await command(client, "convlint.status"))["server_pid"]


async def _edit(client, uri: str, versions, n: int) -> None:
    for _ in range(n):
        v = next(versions)
        client.text_document_did_change(T.DidChangeTextDocumentParams(
            T.VersionedTextDocumentIdentifier(version=v, uri=uri),
            [T.TextDocumentContentChangeWholeDocument(FAULTY if v % 2 else CLEAN)]))
        if v % 50 == 0:
            await asyncio.sleep(0)  # let the transport drain, as an editor's typing does


def _running(client) -> bool:
    return any("report" in [getattr(v, "kind", "") for v in vs]
               for vs in client.progress_reports.values())


@pytest.mark.slow
async def test_soak_edits_opens_closes_and_cancels(tmp_path):
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, **TRUSTED)
    try:
        pid = await _server_pid(client)
        uri = open_doc(client, ws / "convert.py", FAULTY)
        await diagnostics(client, uri, lambda ds: "CL411" in codes(ds))
        versions = itertools.count(2)
        await _edit(client, uri, versions, 200)  # warm: caches and imports settle
        await diagnostics(client, uri, lambda ds: True)
        base = _rss_kb(pid)

        answers = 0
        for round_ in range(5):
            await _edit(client, uri, versions, EDITS // 5)
            # another document opened, edited and closed: its diagnostics are cleared
            other = open_doc(client, ws / "convert_clean.py", FAULTY, version=1)
            await diagnostics(client, other, lambda ds: "CL411" in codes(ds))
            client.text_document_did_close(T.DidCloseTextDocumentParams(
                T.TextDocumentIdentifier(other)))
            await diagnostics(client, other, lambda ds: ds == [])
            # a background job cancelled mid-way: exactly one answer (the cancellation error)
            client.progress_reports.clear()
            msg_id = f"soak-{round_}"
            fut = asyncio.ensure_future(client.protocol.send_request_async(
                "workspace/executeCommand", T.ExecuteCommandParams(
                    "convlint.testJob", [{"kind": "sleep", "params": {"seconds": 30}}]),
                msg_id=msg_id))
            await wait_for(lambda: _running(client), 60, "the job's progress")
            client.protocol.notify("$/cancelRequest", T.CancelParams(id=msg_id))
            with pytest.raises(JsonRpcException):
                await asyncio.wait_for(fut, 30)
            answers += 1
            # the server still answers, once
            assert (await command(client, "convlint.status"))["server_pid"] == pid
            answers += 1

        last = next(versions) - 1  # the last version sent: odd = FAULTY, even = CLEAN
        want = (lambda ds: "CL411" in codes(ds)) if last % 2 else (lambda ds: ds == [])
        await diagnostics(client, uri, want, timeout=60)
        await asyncio.sleep(1.0)  # nothing stale arrives afterwards
        assert want(list(client.diagnostics[uri]))
        assert answers == 10
        grown = _rss_kb(pid) - base
        assert grown < 40_000, f"the server grew by {grown} kB over {EDITS} edits"
    finally:
        await stop(client)
