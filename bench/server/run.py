"""Benchmark: the language server, driven over stdio as an editor drives it.

1. Static diagnostics round trip: didChange of a 300-line conversion script -> its
   publishDiagnostics, p50/p95 over many edits. Peer in the same run: ``analyze_source`` of the
   same text called in-process (the analysis alone, without LSP).
2. Start-up: spawning the server -> the first diagnostic of an opened script. Peer: spawning
   ``python -c "import pygls.lsp.server"`` (the floor of any pygls 2 server on this machine).
3. Recheck after an edit that changes no model: didSave -> the conversion diagnostics
   republished (a content-hash cache hit). Peer: the first, uncached check of the same pair.

Writes the ``server`` section of bench/RESULTS.md.

    python bench/server/run.py [--edits 200] [--starts 5]
"""

from __future__ import annotations

import argparse
import asyncio
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


async def static_round_trip(tmp: Path, edits: int, text: str) -> dict:
    from convlint.analyzers.scripts.check import analyze_source

    ws = workspace(tmp)
    client = await start(tmp, ws, heavyChecks=False)
    client.diagnostics = Published()
    try:
        path = ws / "long.py"
        path.write_text(text)
        uri = open_doc(client, path, text)
        await next_publish(client)
        times = []
        for v in range(2, edits + 2):
            new = text + ("# edit\n" if v % 2 else "")
            t0 = time.perf_counter()
            client.text_document_did_change(T.DidChangeTextDocumentParams(
                T.VersionedTextDocumentIdentifier(version=v, uri=uri), [T.TextDocumentContentChangeWholeDocument(new)]))
            times.append(await next_publish(client) - t0)
        n = len(client.diagnostics[uri])
    finally:
        await stop(client)
    peer = []
    for _ in range(edits):
        t0 = time.perf_counter()
        analyze_source(text, str(path))
        peer.append(time.perf_counter() - t0)
    return {"p50": statistics.median(times), "p95": pct(times, 0.95), "peer": statistics.median(peer),
            "lines": text.count("\n"), "diagnostics": n}


async def startup(tmp: Path, starts: int) -> dict:
    firsts, inits = [], []
    for i in range(starts):
        d = tmp / f"start{i}"
        d.mkdir()
        ws = workspace(d)
        t0 = time.perf_counter()
        client = await start(d, ws, heavyChecks=False)
        t1 = time.perf_counter()
        client.diagnostics = Published()
        open_doc(client, ws / "convert.py")
        firsts.append(await next_publish(client) - t0)
        inits.append(t1 - t0)
        await stop(client)
    peer = []
    for _ in range(starts):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pygls.lsp.server"], check=True)
        peer.append(time.perf_counter() - t0)
    return {"first": statistics.median(firsts), "init": statistics.median(inits),
            "peer": statistics.median(peer), "all": firsts}


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
        while not any(d.data and d.data.get("origin") == "conversion" for d in client.diagnostics.get(uri, ())):
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
        conv = sum(1 for d in client.diagnostics[uri] if d.data and d.data.get("origin") == "conversion")
    finally:
        await stop(client)
    return {"p50": statistics.median(times), "p95": pct(times, 0.95), "first": first, "conversion_diagnostics": conv}


async def main_async(a) -> None:
    with tempfile.TemporaryDirectory(prefix="convlint-bench-server-") as d:
        tmp = Path(d)
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        (tmp / "c").mkdir()
        (tmp / "d").mkdir()
        rows, srs = [], []
        for name, text, d in (("a conversion script in ordinary code", realistic_script(300), "a"),
                              ("dense: every line converts (the 13 rule fixtures concatenated)", long_script(300), "d")):
            s = await static_round_trip(tmp / d, a.edits, text)
            srs.append(s)
            print(f"static round trip, {name} ({s['lines']} lines, {s['diagnostics']} diagnostics): p50 "
                  f"{s['p50'] * 1e3:.1f} ms, p95 {s['p95'] * 1e3:.1f} ms; analyze_source alone {s['peer'] * 1e3:.1f} ms",
                  flush=True)
            rows.append(f"| static diagnostics round trip (didChange -> publishDiagnostics), {s['lines']}-line script: "
                        f"{name}, {s['diagnostics']} diagnostics | p50 {s['p50'] * 1e3:.1f} ms, p95 {s['p95'] * 1e3:.1f} ms "
                        f"| `analyze_source` in-process: {s['peer'] * 1e3:.1f} ms | {s['p50'] / s['peer']:.2f} | p50 < 10 ms |")
        u = await startup(tmp / "b", a.starts)
        print(f"start-up to first diagnostic: median {u['first']:.3f} s (initialize answered at {u['init']:.3f} s); "
              f"bare 'import pygls.lsp.server' process {u['peer']:.3f} s", flush=True)
        r = await recheck(tmp / "c", a.tvm)
        print(f"recheck after an edit, cache hit: p50 {r['p50'] * 1e3:.1f} ms, p95 {r['p95'] * 1e3:.1f} ms; "
              f"first uncached check {r['first']:.2f} s", flush=True)
    if a.no_write:
        return
    cmd = f"python bench/server/run.py --edits {a.edits} --starts {a.starts}" + (" --tvm" if a.tvm else "")
    checks = {f"round trip, {n}": v < 0.010 for n, v in
              (("ordinary script", srs[0]["p50"]), ("dense script", srs[1]["p50"]))}
    checks["start-up under 0.5 s (the bare pygls import alone is " + f"{u['peer']:.3f} s)"] = u["first"] < 0.5
    checks["cached recheck under 100 ms"] = r["p50"] < 0.1
    met = ", ".join(k for k, v in checks.items() if v) or "none"
    unmet = ", ".join(k for k, v in checks.items() if not v) or "none"
    body = f"""## Language server (`make bench-server`)

Command: `{cmd}` (2-core CI machine type; the server is a real subprocess driven over stdio by
pytest-lsp's client, as an editor drives it).

| measure | convlint | peer in the same run | ratio | target |
| --- | --- | --- | --- | --- |
{rows[0]}
{rows[1]}
| server start -> first diagnostic (median of {a.starts}) | {u['first']:.3f} s | a bare `python -c "import pygls.lsp.server"` process: {u['peer']:.3f} s | {u['first'] / u['peer']:.2f} | < 0.5 s |
| recheck after an edit that changes no model (didSave -> conversion diagnostics, cache hit; 20 saves) | p50 {r['p50'] * 1e3:.1f} ms, p95 {r['p95'] * 1e3:.1f} ms | the first, uncached check of the pair: {r['first']:.2f} s | {r['p50'] / r['first']:.4f} | < 100 ms |

Start-up: the initialize response arrives at {u['init']:.3f} s; nearly all of it is importing
pygls and lsprotocol (the peer column), which every pygls 2 server pays.

Targets met: {met}. Not met: {unmet}.
"""
    write_section("server", body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--tvm", action="store_true", help="the first check also cross-checks through TVM")
    ap.add_argument("--no-write", action="store_true")
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
