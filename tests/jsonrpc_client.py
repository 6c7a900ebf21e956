"""A minimal JSON-RPC client over a language server's stdio (JSON only, as an editor's client;
standard library only, so a bare environment can drive the server with it). The server benchmark
and the packaging tests use it; it answers the server's own requests with null."""

from __future__ import annotations

import json
import subprocess


class Client:
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
        if (
            "method" in msg and "id" in msg
        ):  # client/registerCapability, window/workDoneProgress/create, ...
            self.send({"id": msg["id"], "result": None})
        return msg

    def request(self, method: str, params) -> dict:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        while "method" in (msg := self.recv()) or msg.get("id") != self.next_id:
            pass
        if "error" in msg:
            raise RuntimeError(
                f"the server answered {method} with an error: {msg['error'].get('message')}"
            )
        return msg.get("result")

    def published(self, uri: str) -> list:
        while True:
            msg = self.recv()
            if (
                msg.get("method") == "textDocument/publishDiagnostics"
                and msg["params"]["uri"] == uri
            ):
                return msg["params"]["diagnostics"]


SCRIPT = """import keras
import tensorflow as tf

model = keras.models.load_model("model.keras")
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
with open("model.tflite", "wb") as f:
    f.write(converter.convert())
"""


def one_session(python: str, ws, env: dict | None = None, timeout: float = 120.0) -> list:
    """A real session of ``python -m convlint.server`` in the folder ``ws`` (initialize, open a
    conversion script, its diagnostics, shutdown, exit); the rule codes published for the script.
    Raises when the server does not complete it or exits with a non-zero status."""
    import threading
    from pathlib import Path

    ws = Path(ws)
    (ws / "convert.py").write_text(SCRIPT)
    p = subprocess.Popen(
        [python, "-m", "convlint.server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ws,
        env=env,
    )
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    try:
        c = Client(p)
        c.request(
            "initialize",
            {
                "processId": None,
                "rootUri": ws.as_uri(),
                "capabilities": {},
                "initializationOptions": {"heavyChecks": False},
            },
        )
        c.notify("initialized", {})
        uri = (ws / "convert.py").as_uri()
        c.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": SCRIPT}},
        )
        codes = [d.get("code") for d in c.published(uri)]
        c.request("shutdown", None)
        c.notify("exit", None)
        assert p.wait(timeout) == 0
        return codes
    finally:
        timer.cancel()
        if p.poll() is None:
            p.kill()
            p.wait()
