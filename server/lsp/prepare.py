"""``convlint serve --prepare``: fill the language server's start-up cache, then exit.

The first server start on a machine compiles the code attrs and cattrs generate for lsprotocol
(server/lsp/codecache.py) and is ~0.2 s slower than every later start. pip compiles a package's
modules to ``__pycache__`` when it installs them; this does the same for that generated code: it
starts the real server (``python -m convlint.server``) in a scratch workspace, drives it through
what an editor's first minutes do (initialize with an editor's capabilities, open a conversion
script, ask for its quick fixes, edit, save, run a command, close, shut down) and lets it save the
cache as it exits. ``make install`` and the VS Code extension (after it installs convlint) run it.
It is also a smoke test of the installation: a server that cannot start fails it.

No heavy check runs (no worker, no TF/torch/TVM import): the cache holds only what the server
itself compiles.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from convlint.analyzers.errors import ConvlintError

# a conversion script with a finding that has a quick fix (CL411: Optimize.DEFAULT without a dataset)
SCRIPT = '''import keras
import tensorflow as tf

model = keras.models.load_model("model.keras")
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
with open("model.tflite", "wb") as f:
    f.write(converter.convert())
'''

# the flags an editor's client sets that change what the server does (dynamic file watching, quick
# fixes as literals, progress); every other capability is announced too (``capabilities``)
EDITOR = {
    "workspace": {"applyEdit": True, "workspaceEdit": {"documentChanges": True}, "configuration": True,
                  "didChangeWatchedFiles": {"dynamicRegistration": True}, "workspaceFolders": True},
    "textDocument": {
        "synchronization": {"didSave": True},
        "publishDiagnostics": {"relatedInformation": True, "codeDescriptionSupport": True, "dataSupport": True},
        "codeAction": {"isPreferredSupport": True, "dataSupport": True, "codeActionLiteralSupport": {
            "codeActionKind": {"valueSet": ["", "quickfix", "refactor", "source"]}}},
    },
    "window": {"workDoneProgress": True},
    "general": {"positionEncodings": ["utf-16"]},
}


def _announced(cls, outer: tuple = ()):
    """An instance of an lsprotocol capabilities class with every nested capabilities object present.
    cattrs compiles a class's decoder the first time a message holds one, so an editor that announces
    more than we did would otherwise compile the rest at its first start."""
    import enum
    import typing

    import attrs

    attrs.resolve_types(cls)
    kw = {}
    for f in attrs.fields(cls):
        options = typing.get_args(f.type) if typing.get_origin(f.type) is typing.Union else (f.type,)
        sub = next((o for o in options if attrs.has(o)), None)
        if sub is not None and sub not in outer:
            kw[f.name] = _announced(sub, (*outer, cls))
        elif f.default is attrs.NOTHING:  # required: the simplest valid value
            t = f.type
            kw[f.name] = (True if t is bool else "" if t is str else 0 if t is int
                          else next(iter(t)) if isinstance(t, type) and issubclass(t, enum.Enum) else [])
    return cls(**kw)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def capabilities() -> dict:
    """What the session's client announces: every capability object lsprotocol knows, with an editor's flags."""
    from lsprotocol import types as T
    from lsprotocol.converters import get_converter

    return _merge(get_converter().unstructure(_announced(T.ClientCapabilities)), EDITOR)


class Client:
    """A minimal JSON-RPC client over the server's stdio (JSON only, as an editor's client; the
    server benchmark drives the server with it too); answers the server's own requests with null."""

    def __init__(self, proc: subprocess.Popen):
        self.p = proc
        self.next_id = 0

    def send(self, msg: dict) -> None:
        b = json.dumps({"jsonrpc": "2.0", **msg}).encode()
        self.p.stdin.write(b"Content-Length: %d\r\n\r\n" % len(b) + b)
        self.p.stdin.flush()

    def notify(self, method: str, params) -> None:
        self.send({"method": method, "params": params})

    def recv(self) -> dict:
        n = None
        while (line := self.p.stdout.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"content-length"):
                n = int(line.split(b":")[1])
        if n is None:
            raise EOFError("the server closed its output")
        msg = json.loads(self.p.stdout.read(n))
        if "method" in msg and "id" in msg:  # client/registerCapability, window/workDoneProgress/create, ...
            self.send({"id": msg["id"], "result": None})
        return msg

    def request(self, method: str, params) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while "method" in (msg := self.recv()) or msg.get("id") != self.next_id:
            pass
        if "error" in msg:
            raise ConvlintError(f"the server answered {method} with an error: {msg['error'].get('message')}")
        return msg.get("result")

    def published(self, uri: str) -> list:
        while True:
            msg = self.recv()
            if msg.get("method") == "textDocument/publishDiagnostics" and msg["params"]["uri"] == uri:
                return msg["params"]["diagnostics"]


def _session(c: Client, ws: Path) -> None:
    c.request("initialize", {"processId": os.getpid(), "rootUri": ws.as_uri(), "capabilities": capabilities(),
                             "workspaceFolders": [{"uri": ws.as_uri(), "name": ws.name}],
                             "clientInfo": {"name": "convlint-prepare"},
                             "initializationOptions": {"heavyChecks": False}})
    c.notify("initialized", {})
    uri = (ws / "convert.py").as_uri()
    c.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                                       "text": SCRIPT}})
    diags = c.published(uri)
    if not diags:
        raise ConvlintError("the server published no diagnostic for the sample conversion script")
    c.request("textDocument/codeAction", {"textDocument": {"uri": uri}, "range": diags[0]["range"],
                                          "context": {"diagnostics": diags, "triggerKind": 1}})
    c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": 2},
                                        "contentChanges": [{"text": SCRIPT + "# edited\n"}]})
    c.published(uri)
    c.notify("textDocument/didSave", {"textDocument": {"uri": uri}})
    c.published(uri)
    c.notify("workspace/didChangeConfiguration", {"settings": {"convlint": {"heavyChecks": False}}})
    c.request("workspace/executeCommand", {"command": "convlint.status", "arguments": []})
    c.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    c.published(uri)
    # an error answer (a client that refuses a request, as some do registerCapability): its decoder too;
    # the server notes an answer to a request it never sent and goes on
    c.send({"id": "convlint-prepare", "error": {"code": -32601, "message": "prepare: an error answer"}})
    c.request("shutdown", None)
    c.notify("exit", None)


def prepare(folder: Path, timeout: float = 120.0) -> dict:
    """Run one editor-like session of the server with its cache in ``folder``; the cache's
    entries and size afterwards. Raises ConvlintError when the server cannot be driven."""
    from convlint.server.lsp.codecache import CodeCache, cache_path

    path = cache_path(folder)
    env = dict(os.environ, CONVLINT_CACHE_DIR=str(folder), CONVLINT_BYTECODE_CACHE="1")
    with tempfile.TemporaryDirectory(prefix="convlint-prepare-") as d:
        ws = Path(d) / "workspace"
        ws.mkdir()
        (ws / "convert.py").write_text(SCRIPT)
        err = Path(d) / "stderr.txt"
        with open(err, "wb") as ef:
            p = subprocess.Popen([sys.executable, "-m", "convlint.server"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=ef, cwd=ws, env=env)
            timer = threading.Timer(timeout, p.kill)
            timer.start()
            try:
                _session(Client(p), ws)
                code = p.wait(timeout)
            except (EOFError, OSError, ValueError, subprocess.TimeoutExpired) as e:
                timed_out = not timer.is_alive()
                p.kill()
                p.wait()
                tail = err.read_text(errors="replace").strip().splitlines()[-5:]
                why = f"no answer within {timeout:.0f} s" if timed_out else f"{type(e).__name__}: {e}"
                raise ConvlintError(f"the language server did not complete a session ({why})",
                                    hint="\n".join(tail) or "run `convlint serve` by hand to see why") from None
            finally:
                timer.cancel()
                if p.poll() is None:
                    p.kill()
                    p.wait()
    if code != 0:
        raise ConvlintError(f"the language server exited with status {code} after its session")
    if not path.is_file():
        raise ConvlintError(f"the language server ran but wrote no cache at {path}",
                            hint="is the cache folder writable? set CONVLINT_CACHE_DIR to one that is")
    return {"path": str(path), "entries": len(CodeCache(path).codes), "bytes": path.stat().st_size}
