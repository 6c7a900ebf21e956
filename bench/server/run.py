"""Benchmark: the language server, driven over stdio as an editor drives it.

1. Static diagnostics round trip: didChange of a 300-line conversion script -> its
   publishDiagnostics, p50/p95 over many edits (``edit_sequence``: characters typed into lines
   spread over the script, and one edit in four adding or removing a line). Peer in the same run:
   ``analyze_source`` of the same text called in-process, from scratch (the analysis alone,
   without LSP and without the re-parse of an edit's neighbourhood only).
2. Start-up: spawning the server -> the first diagnostic of an opened script. Peer: the same
   start of a minimal pygls 2 server (bench/server/minimal_pygls.py: one diagnostic on didOpen),
   both driven by the same JSON-only client; also ``python -c "import pygls.lsp.server"``.
3. Recheck after an edit that changes no model: didSave -> the conversion diagnostics
   republished (a content-hash cache hit). Peer: the first, uncached check of the same pair.

Writes the ``server`` section of bench/RESULTS.md.

    python bench/server/run.py [--edits 200] [--starts 5]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(HERE.parent), str(ROOT / "tests"), str(HERE.parent / "scripts")]

from lsp_helpers import FAULTY, open_doc, start, stop, workspace  # noqa: E402
from lsprotocol import types as T  # noqa: E402
from results import write_section  # noqa: E402
from run import long_script  # noqa: E402  (bench/scripts/run.py)

ORDINARY = '''

def load_split_{i}(folder, size=(224, 224), limit=None):
    """Read and resize the images of one split."""
    paths = sorted(Path(folder).glob("*.png"))[:limit]
    out = np.zeros((len(paths), *size, 3), dtype=np.float32)
    for j, p in enumerate(paths):
        img = Image.open(p).convert("RGB").resize(size)
        out[j] = np.asarray(img, dtype=np.float32) / 255.0
    logging.info("split %s: %d images", folder, len(paths))
    return out


def top_k_{i}(scores, k=5):
    idx = np.argsort(-scores, axis=-1)[:, :k]
    return [[(int(c), float(s[c])) for c in row] for row, s in zip(idx, scores)]
'''


def realistic_script(n: int) -> str:
    """One conversion script (the Optimize.DEFAULT fixture) in n lines of ordinary code:
    helpers that load data and post-process outputs, as real conversion scripts carry."""
    head = "import logging\nfrom pathlib import Path\n\nimport numpy as np\nfrom PIL import Image\n"
    body, i = "", 0
    while (head + body + FAULTY).count("\n") < n:
        body += ORDINARY.format(i=i)
        i += 1
    lines = (head + body).splitlines()[: n - FAULTY.count("\n")]
    return "\n".join(lines) + "\n" + FAULTY


class Published(dict):
    """client.diagnostics that signals each publish."""

    def __init__(self):
        super().__init__()
        self.event = asyncio.Event()
        self.count = 0

    def __setitem__(self, k, v):
        super().__setitem__(k, v)
        self.count += 1
        self.event.set()


async def next_publish(client, timeout=600.0) -> float:
    client.diagnostics.event.clear()
    await asyncio.wait_for(client.diagnostics.event.wait(), timeout)
    return time.perf_counter()


def pct(xs, q):
    return sorted(xs)[min(int(q * len(xs)), len(xs) - 1)]


def edit_sequence(text: str, n: int) -> list:
    """n successive versions of the script as someone edits it: three edits in four type a character
    into a line (a trailing comment grows, at lines spread over the script), one in four adds a
    blank
    line there or removes the one added before (everything below it moves)."""
    import ast

    lines = text.split("\n")
    out, added = [], None
    for v in range(n):
        i = (v * 37) % (len(lines) - 1)
        if v % 4 == 3:
            if added is None:
                lines.insert(i, "")
                added = i
            else:
                del lines[added]
                added = None
        else:
            # the first line from i on where a comment can go
            for j in [*range(i, len(lines)), *range(i)]:
                if j == added or lines[j].rstrip().endswith("\\"):
                    continue
                typed = lines[j] + ("e" if "  # e" in lines[j] else "  # e")
                cand = lines[:j] + [typed] + lines[j + 1:]
                try:
                    ast.parse("\n".join(cand))
                except SyntaxError:
                    continue
                lines = cand
                break
        out.append("\n".join(lines))
    return out


@contextlib.contextmanager
def raw_session(
    ws: Path, cache: Path, capabilities: dict, command: tuple = ("-m", "convlint.server")
):
    """The server (``python *command``) spawned in ``ws`` and initialized through a minimal JSON-RPC
    client (JSON only, as an editor's client: tests/jsonrpc_client.py); shut down on leaving."""
    from jsonrpc_client import Client

    env = dict(os.environ, CONVLINT_CACHE_DIR=str(cache), TF_CPP_MIN_LOG_LEVEL="3")
    p = subprocess.Popen([sys.executable, *command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         env=env, cwd=ws)
    try:
        c = Client(p)
        c.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": ws.as_uri(),
                "capabilities": capabilities,
                "workspaceFolders": [{"uri": ws.as_uri(), "name": ws.name}],
                "initializationOptions": {"heavyChecks": False},
            },
        )
        c.notify("initialized", {})
        yield c
        c.request("shutdown", None)
        c.notify("exit", None)
        p.wait(20)
    finally:
        if p.poll() is None:
            p.kill()


def raw_open(c, uri: str, text: str) -> list:
    """didOpen, then the document's first diagnostics."""
    c.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}},
    )
    return c.published(uri)


def raw_round_trip(tmp: Path, versions: list, text: str) -> list:
    """The same edits through a minimal JSON-RPC client: JSON over the pipe and nothing else, as an
    editor's client reads it (pytest-lsp's client also builds attrs objects of every message it
    gets, which a 35-diagnostic publish makes cost a few ms in the client itself)."""
    tmp.mkdir()
    ws = workspace(tmp)
    uri = (ws / "long.py").as_uri()
    with raw_session(ws, tmp / "cache", {}) as c:
        raw_open(c, uri, text)
        times = []
        cpu0 = proc_cpu(c.p.pid)
        for v, new in enumerate(versions, start=2):
            t0 = time.perf_counter()
            c.notify("textDocument/didChange", {"textDocument": {"uri": uri, "version": v},
                                                "contentChanges": [{"text": new}]})
            c.published(uri)
            times.append(time.perf_counter() - t0)
        cpu = (proc_cpu(c.p.pid) - cpu0) / len(versions)
    return times, cpu


def proc_cpu(pid: int) -> float:
    """The CPU seconds (user + system) process ``pid`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def static_round_trip(tmp: Path, edits: int, text: str) -> dict:
    from convlint.analyzers.scripts import reparse
    from convlint.analyzers.scripts.check import analyze_source

    ws = workspace(tmp)
    client = await start(tmp, ws, heavyChecks=False)
    client.diagnostics = Published()
    versions = edit_sequence(text, edits)
    try:
        path = ws / "long.py"
        path.write_text(text)
        uri = open_doc(client, path, text)
        await next_publish(client)
        times = []
        for v, new in enumerate(versions, start=2):
            t0 = time.perf_counter()
            client.text_document_did_change(
                T.DidChangeTextDocumentParams(
                    T.VersionedTextDocumentIdentifier(version=v, uri=uri),
                    [T.TextDocumentContentChangeWholeDocument(new)],
                )
            )
            times.append(await next_publish(client) - t0)
        n = len(client.diagnostics[uri])
    finally:
        await stop(client)
    raw, raw_cpu = raw_round_trip(tmp / "raw", versions, text)
    peer = []
    for _ in range(edits):
        reparse.forget()  # the analysis from scratch: a whole parse
        t0 = time.perf_counter()
        analyze_source(text, str(path))
        peer.append(time.perf_counter() - t0)
    return {
        "p50": statistics.median(times),
        "p95": pct(times, 0.95),
        "peer": statistics.median(peer),
        "raw_p50": statistics.median(raw),
        "raw_p95": pct(raw, 0.95),
        "raw_cpu": raw_cpu,
        "lines": text.count("\n"),
        "diagnostics": n,
    }


async def one_start(d: Path, cache: Path) -> tuple[float, float]:
    """Spawn the server, initialize, open a script: (initialize answered, first diagnostic), s."""
    d.mkdir()
    ws = workspace(d)
    t0 = time.perf_counter()
    client = await start(d, ws, cache=cache, heavyChecks=False)
    t1 = time.perf_counter()
    client.diagnostics = Published()
    open_doc(client, ws / "convert.py")
    first = await next_publish(client) - t0
    await stop(client)
    return t1 - t0, first


def raw_start(d: Path, cache: Path, command: tuple = ("-m", "convlint.server")) -> float:
    """The same start through a minimal JSON-RPC client (JSON only, as an editor's client): spawn,
    initialize with VS Code's capabilities, open the script; the first diagnostic, s."""
    from lsprotocol.converters import get_converter
    from pytest_lsp import client_capabilities

    d.mkdir()
    ws = workspace(d)
    caps = get_converter().unstructure(client_capabilities("visual-studio-code"))
    t0 = time.perf_counter()
    with raw_session(ws, cache, caps, command) as c:
        raw_open(c, (ws / "convert.py").as_uri(), (ws / "convert.py").read_text())
        first = time.perf_counter() - t0
    return first


def cpu_of(fn, *args):
    """fn's result and the CPU seconds its child processes used meanwhile (user + system)."""
    r0 = os.times()
    out = fn(*args)
    r1 = os.times()
    return out, (r1.children_user - r0.children_user) + (r1.children_system - r0.children_system)


async def startup(tmp: Path, starts: int) -> dict:
    """convlint's start and the minimal pygls server's, both through the same JSON-only client, with
    the bare pygls import, interleaved so a busy or throttled machine slows them alike; wall clock
    and the child processes' CPU time."""
    minimal = (str(HERE / "minimal_pygls.py"),)
    await one_start(tmp / "warm-up", tmp / "cache")
    warm, inits, peer, raw, pyg, raw_cpu, pyg_cpu = [], [], [], [], [], [], []
    for i in range(starts):
        init, first = await one_start(tmp / f"warm{i}", tmp / "cache")
        warm.append(first)
        inits.append(init)
        t, c = cpu_of(raw_start, tmp / f"raw{i}", tmp / "cache")
        raw.append(t)
        raw_cpu.append(c)
        t, c = cpu_of(raw_start, tmp / f"pygls{i}", tmp / "cache", minimal)
        pyg.append(t)
        pyg_cpu.append(c)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pygls.lsp.server"], check=True)
        peer.append(time.perf_counter() - t0)
    return {
        "first": statistics.median(warm),
        "init": statistics.median(inits),
        "peer": statistics.median(peer),
        "raw": statistics.median(raw),
        "pygls": statistics.median(pyg),
        "raw_cpu": statistics.median(raw_cpu),
        "pygls_cpu": statistics.median(pyg_cpu),
        "all": warm,
    }


async def recheck(tmp: Path, tvm: bool) -> dict:
    ws = workspace(tmp)
    client = await start(tmp, ws, heavyChecks=True, trustedExecution=True, tvm=tvm)
    client.diagnostics = Published()
    try:
        uri = open_doc(client, ws / "convert.py", FAULTY)
        await next_publish(client)
        save = T.DidSaveTextDocumentParams(T.TextDocumentIdentifier(uri))
        t0 = time.perf_counter()
        client.text_document_did_save(save)
        while not any(
            d.data and d.data.get("origin") == "conversion" for d in client.diagnostics.get(uri, ())
        ):
            await next_publish(client)
        first = time.perf_counter() - t0
        times = []
        for v in range(2, 22):
            client.text_document_did_change(T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(version=v, uri=uri),
                [T.TextDocumentContentChangeWholeDocument(FAULTY + f"# edit {v}\n")]))
            await next_publish(client)
            c0 = client.diagnostics.count
            t0 = time.perf_counter()
            client.text_document_did_save(save)
            while client.diagnostics.count < c0 + 2:  # the static run, then the pair from the cache
                await next_publish(client)
            times.append(time.perf_counter() - t0)
        conv = sum(
            1 for d in client.diagnostics[uri] if d.data and d.data.get("origin") == "conversion"
        )
    finally:
        await stop(client)
    return {
        "p50": statistics.median(times),
        "p95": pct(times, 0.95),
        "first": first,
        "conversion_diagnostics": conv,
    }


def byte_compile() -> None:
    """Write convlint's own __pycache__ as pip does when it installs a wheel: the editable install
    of a checkout under PYTHONDONTWRITEBYTECODE=1 (this machine type sets it) would otherwise
    compile every module from source at each start."""
    import compileall

    for d in ("convlint", "analyzers", "server"):
        compileall.compile_dir(str(ROOT / d), quiet=1)


async def main_async(a) -> None:
    byte_compile()
    with tempfile.TemporaryDirectory(prefix="convlint-bench-server-") as d:
        tmp = Path(d)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        (tmp / "c").mkdir()
        (tmp / "d").mkdir()
        rows, srs = [], []
        for name, text, d in (
            ("a conversion script in ordinary code", realistic_script(300), "a"),
            (
                "dense: every line converts (the 13 rule fixtures concatenated)",
                long_script(300),
                "d",
            ),
        ):
            s = await static_round_trip(tmp / d, a.edits, text)
            srs.append(s)
            print(
                f"static round trip, {name} ({s['lines']} lines, {s['diagnostics']} "
                f"diagnostics): p50 {s['p50'] * 1e3:.1f} ms, p95 {s['p95'] * 1e3:.1f} ms (raw "
                f"JSON client: p50 {s['raw_p50'] * 1e3:.1f} ms, p95 {s['raw_p95'] * 1e3:.1f} ms, "
                f"server CPU {s['raw_cpu'] * 1e3:.1f} ms an edit); analyze_source alone "
                f"{s['peer'] * 1e3:.1f} ms",
                flush=True,
            )
            rows.append(
                f"| static diagnostics round trip (didChange -> publishDiagnostics), "
                f"{s['lines']}-line script: {name}, {s['diagnostics']} diagnostics | p50 "
                f"{s['p50'] * 1e3:.1f} ms, p95 {s['p95'] * 1e3:.1f} ms | `analyze_source` "
                f"in-process, from scratch: {s['peer'] * 1e3:.1f} ms | "
                f"{s['p50'] / s['peer']:.2f} | p50 < 5 ms, p95 < 10 ms |"
            )
            rows.append(
                f"| the same edits through a minimal JSON-RPC client (JSON only, as an editor's "
                f"client) | p50 {s['raw_p50'] * 1e3:.1f} ms, p95 {s['raw_p95'] * 1e3:.1f} ms "
                f"wall clock; the server's CPU time {s['raw_cpu'] * 1e3:.1f} ms an edit (mean) | "
                f"the same peer | {s['raw_p50'] / s['peer']:.2f} | |"
            )
        u = await startup(tmp / "b", a.starts)
        print(
            f"start-up to first diagnostic: median {u['first']:.3f} s (initialize answered at "
            f"{u['init']:.3f} s), {u['raw']:.3f} s through a JSON-only client (CPU "
            f"{u['raw_cpu']:.3f} s); minimal pygls server {u['pygls']:.3f} s (CPU "
            f"{u['pygls_cpu']:.3f} s): {u['raw'] / u['pygls']:.2f}x; bare 'import "
            f"pygls.lsp.server' process {u['peer']:.3f} s",
            flush=True,
        )
        r = await recheck(tmp / "c", a.tvm)
        print(
            f"recheck after an edit, cache hit: p50 {r['p50'] * 1e3:.1f} ms, p95 "
            f"{r['p95'] * 1e3:.1f} ms; first uncached check {r['first']:.2f} s",
            flush=True,
        )
    if a.no_write:
        return
    cmd = f"python bench/server/run.py --edits {a.edits} --starts {a.starts}" + (
        " --tvm" if a.tvm else ""
    )
    checks = {f"round trip, {n}": v["raw_p50"] < 0.005 and v["raw_p95"] < 0.010 for n, v in
              (("ordinary script", srs[0]), ("dense script", srs[1]))}
    checks["start-up at most 1.3x the minimal pygls server's"] = u["raw"] / u["pygls"] <= 1.3
    checks["cached recheck under 100 ms"] = r["p50"] < 0.1
    met = ", ".join(k for k, v in checks.items() if v) or "none"
    unmet = ", ".join(k for k, v in checks.items() if not v) or "none"
    body = f"""## Language server (`make bench-server`)

Command: `{cmd}` (2-core CI machine type; the server is a real subprocess driven over stdio by
pytest-lsp's client, as an editor drives it).

| measure | convlint | peer in the same run | ratio | target |
| --- | --- | --- | --- | --- |
{chr(10).join(rows)}
| server start -> first diagnostic (median of {a.starts}), through a minimal JSON-RPC client (JSON only, as an editor's client) | {u["raw"]:.3f} s wall clock, {u["raw_cpu"]:.3f} s CPU | the same start of a minimal pygls 2 server (bench/server/minimal_pygls.py: one diagnostic on didOpen), same client: {u["pygls"]:.3f} s wall clock, {u["pygls_cpu"]:.3f} s CPU | {u["raw"] / u["pygls"]:.2f} (CPU {u["raw_cpu"] / u["pygls_cpu"]:.2f}) | <= 1.3 |
| the same start through pytest-lsp's client (it builds attrs objects of each message in the measuring process) | {u["first"]:.3f} s | a bare `python -c "import pygls.lsp.server"` process: {u["peer"]:.3f} s | {u["first"] / u["peer"]:.2f} | |
| recheck after an edit that changes no model (didSave -> conversion diagnostics, cache hit; 20 saves) | p50 {r["p50"] * 1e3:.1f} ms, p95 {r["p95"] * 1e3:.1f} ms | the first, uncached check of the pair: {r["first"]:.2f} s | {r["p50"] / r["first"]:.4f} | < 100 ms |

Round trip: {a.edits} successive edits of each script (`edit_sequence`: three in four type a
character into a line, at lines spread over the script; one in four adds or removes a line, so
everything below it moves). The server parses again only the top-level statements an edit
touched (analyzers/scripts/reparse.py); the peer analyses the whole text from scratch.

Start-up: the initialize response arrives at {u["init"]:.3f} s; nearly all of it is importing
pygls and lsprotocol, as for any pygls 2 server. No start-up cache: the server compiles what attrs
and cattrs generate at each start, as the minimal pygls server does (docs/server.md, Start-up).
convlint's, the minimal server's and the bare-import starts are interleaved.

Targets met: {met}. Not met: {unmet}. The speed of this VM type varies from run to run and the
machine is shared (up to 8 processes at once): the ratio column, against a peer in the same run,
is the comparable figure, and CPU time is steadier than wall clock.
"""
    write_section("server", body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument(
        "--tvm", action="store_true", help="the first check also cross-checks through TVM"
    )
    ap.add_argument("--no-write", action="store_true")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
