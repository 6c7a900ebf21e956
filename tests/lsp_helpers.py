"""Helpers for the language server's end-to-end tests: a workspace built from the shipped
fixtures, a real server subprocess driven by pytest-lsp's client, and waiting on what it sends."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

from lsprotocol import types as T
from pytest_lsp import ClientServerConfig, client_capabilities

from conftest import ROOT

MODELS = ROOT / "fixtures" / "models"

FAULTY = '''"""Keras -> TFLite with Optimize.DEFAULT (weights silently int8)."""
import keras
import tensorflow as tf

model = keras.models.load_model("models/mobilenet.keras")
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
tflite_model = converter.convert()
with open("models/mobilenet.dynint8.tflite", "wb") as f:
    f.write(tflite_model)
'''

CLEAN = (
    FAULTY.replace("converter.optimizations = [tf.lite.Optimize.DEFAULT]\n", "")
    .replace("mobilenet.dynint8.tflite", "mobilenet.tflite")
    .replace("with Optimize.DEFAULT (weights silently int8)", "float")
)


def workspace(tmp: Path) -> Path:
    ws = tmp / "ws"
    (ws / "models").mkdir(parents=True)
    for name in ("mobilenet.keras", "mobilenet.dynint8.tflite", "mobilenet.tflite"):
        shutil.copy(MODELS / name, ws / "models" / name)
    (ws / "convert.py").write_text(FAULTY)
    (ws / "convert_clean.py").write_text(CLEAN)
    return ws


def worker_hooks_env() -> dict:
    """The environment that adds tests/worker_hooks.py's job kinds (abort, sleep) to the worker."""
    here = str(Path(__file__).resolve().parent)
    return {"CONVLINT_WORKER_PLUGINS": "worker_hooks",
            "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")]))}


async def start(
    tmp: Path, ws: Path, cache: Path | None = None, roots: list[Path] | None = None, **options
):
    """A server on ``ws`` (or on the workspace folders ``roots``, a multi-root workspace) with
    ``options``
    as its initializationOptions."""
    env = dict(os.environ, CONVLINT_CACHE_DIR=str(cache or tmp / "cache"), **worker_hooks_env(),
               TF_CPP_MIN_LOG_LEVEL="3")
    cfg = ClientServerConfig([sys.executable, "-m", "convlint.server"], server_env=env)
    client = await cfg.start()
    client.statuses = []

    @client.feature("convlint/status")
    def _status(params):  # the server's job status notifications, for a client's status item
        client.statuses.append(params)

    await client.initialize_session(T.InitializeParams(
        capabilities=client_capabilities("visual-studio-code"), root_uri=ws.as_uri(),
        workspace_folders=[T.WorkspaceFolder(f.as_uri(), f.name) for f in roots or [ws]],
        initialization_options=options))
    return client


async def stop(client) -> None:
    try:
        await asyncio.wait_for(client.shutdown_session(), 20)
    finally:
        await client.stop()


def open_doc(client, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(
        uri, "python", version, path.read_text() if text is None else text)))
    return uri


async def wait_for(pred, timeout: float = 30.0, what: str = "condition"):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        v = pred()
        if v:
            return v
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


async def diagnostics(client, uri: str, pred=lambda ds: True, timeout: float = 30.0) -> list:
    """The document's diagnostics, once ``pred`` holds for them."""
    box = []

    def ok():
        if uri in client.diagnostics and pred(list(client.diagnostics[uri])):
            box.append(list(client.diagnostics[uri]))
            return True
        return False

    await wait_for(ok, timeout, f"diagnostics on {uri}")
    return box[-1]


def codes(ds) -> set:
    return {d.code for d in ds}


async def command(client, name: str, *args, timeout: float = 300.0):
    return await asyncio.wait_for(client.workspace_execute_command_async(
        T.ExecuteCommandParams(name, list(args))), timeout)


async def raw_request(client, method: str, params, msg_id: str, timeout: float = 10.0):
    """Send a request as raw JSON, as a broken client would (no client-side validation)."""
    fut = asyncio.get_running_loop().create_future()
    client.protocol._request_futures[msg_id] = fut
    client.protocol._send_data({"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params})
    return await asyncio.wait_for(fut, timeout)


def raw_notify(client, method: str, params) -> None:
    client.protocol._send_data({"jsonrpc": "2.0", "method": method, "params": params})


async def code_actions(client, uri: str, d: T.Diagnostic) -> tuple[list, list]:
    """The code actions the server offers for diagnostic ``d``, and the quick fixes among them."""
    actions = await client.text_document_code_action_async(T.CodeActionParams(
        T.TextDocumentIdentifier(uri), d.range, T.CodeActionContext([d])))
    return actions, [
        a for a in actions if isinstance(a, T.CodeAction) and a.kind == T.CodeActionKind.QuickFix
    ]
