"""The language server's bytecode cache for the code attrs and cattrs generate (server/lsp/codecache.py):
the same code objects as the builtin compile, reused across starts, and never trusted blindly."""

from __future__ import annotations

import importlib.util
import json
import marshal
import os
import subprocess
import sys

import pytest
from lsp_helpers import command, diagnostics, open_doc, start, stop, workspace

from convlint.server.lsp import codecache
from convlint.server.lsp.codecache import CodeCache, cache_path

SRC = "def f(x: int, y: 'Y' = 2) -> list:\n    return [x, y]\n"


def _fresh(tmp_path) -> CodeCache:
    return CodeCache(cache_path(tmp_path))


def test_cached_code_is_the_code_the_builtin_makes_with_the_callers_future_flags(tmp_path):
    c = _fresh(tmp_path)
    ours = c.compile(SRC, "<generated f>", "exec")  # this module has `from __future__ import annotations`
    builtin = compile(SRC, "<generated f>", "exec")
    assert marshal.dumps(ours) == marshal.dumps(builtin)
    ns: dict = {}
    exec(ours, ns)
    assert ns["f"].__annotations__ == {"x": "int", "y": "'Y'", "return": "list"}  # postponed, as the caller asked
    plain = c.compile(SRC, "<generated f>", "exec", dont_inherit=True)
    assert marshal.dumps(plain) == marshal.dumps(compile(SRC, "<generated f>", "exec", dont_inherit=True))
    assert plain is not ours and (c.misses, c.hits) == (2, 0)
    assert c.compile(SRC, "<generated f>", "exec") is ours and c.hits == 1
    def nested():  # a nested caller's co_flags has CO_NESTED, which is not a flag compile() inherits
        return c.compile(SRC, "<generated f>", "exec")

    assert nested() is ours
    # what it does not cache goes to the builtin unchanged
    assert c.compile(SRC.encode(), "<b>", "exec").co_filename == "<b>"
    with pytest.raises(SyntaxError):
        c.compile("def (", "<bad>", "exec")


def test_cached_exec_runs_what_the_builtin_exec_runs(tmp_path):
    c = _fresh(tmp_path)
    g: dict = {}
    c.exec("def f(x: int) -> int:\n    return x + 1\ny = f(1)", g)
    assert g["y"] == 2 and g["f"].__annotations__ == {"x": "int", "return": "int"}  # the caller's future flags
    ref: dict = {}
    exec("def f(x: int) -> int:\n    return x + 1\ny = f(1)", ref)
    assert marshal.dumps(g["f"].__code__) == marshal.dumps(ref["f"].__code__)
    ns: dict = {}
    c.exec("z = w * 2", {"w": 21}, ns)  # separate locals, as dataclasses passes them
    assert ns == {"z": 42} and c.misses == 2
    c.exec("z = w * 2", {"w": 1}, ns)
    assert ns == {"z": 2} and c.hits == 1
    w = 5  # noqa: F841  (read by the exec'd text from this frame)
    loc = locals()
    c.exec("v = w + 1")  # no namespaces: the caller's, as the builtin
    assert loc["v"] == 6
    with pytest.raises(ZeroDivisionError):
        c.exec("1 / 0", {})
    # text as bytes, from a caller without `from __future__ import annotations`: its flags, not the cache's
    caller: dict = {}
    exec(compile("def run(c, g):\n    c.exec(b'def h(x: int): pass', g)\n", "<caller>", "exec", dont_inherit=True),
         caller)
    gb: dict = {}
    caller["run"](c, gb)
    assert gb["h"].__annotations__ == {"x": int}


DATACLASSES = """
import dataclasses, json, sys
from convlint.server.lsp import codecache
cache = codecache.install(__import__("pathlib").Path(sys.argv[1]))

@dataclasses.dataclass(frozen=True, order=True)
class P:
    x: int
    y: list = dataclasses.field(default_factory=list, compare=False)
    z: str = "z"

@dataclasses.dataclass(slots=True, kw_only=True)
class Q:
    a: int = 1

p = P(2)
try:
    p.x = 3
    frozen = False
except dataclasses.FrozenInstanceError:
    frozen = True
out = {"repr": repr(p), "eq": p == P(2, [1]), "lt": P(1) < P(2), "hash": hash(p) == hash(P(2)), "frozen": frozen,
       "q": repr(Q(a=3)), "slots": hasattr(Q, "__slots__"), "hits": cache.hits, "misses": cache.misses}
codecache.save()
print(json.dumps(out))
"""


def test_dataclasses_made_through_the_cache_behave_as_made_by_exec(tmp_path):
    runs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", DATACLASSES, str(tmp_path)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        runs.append(json.loads(r.stdout))
    cold, warm = runs
    assert cold["misses"] > warm["misses"]
    for k in ("repr", "eq", "lt", "hash", "frozen", "q", "slots"):
        assert warm[k] == cold[k]
    assert warm["repr"] == "P(x=2, y=[], z='z')" and warm["eq"] and warm["lt"] and warm["hash"] and warm["frozen"]
    assert warm["q"] == "Q(a=3)" and warm["slots"]


def test_saved_codes_load_in_the_next_process_and_nothing_new_is_not_written(tmp_path):
    c = _fresh(tmp_path)
    code = c.compile(SRC, "<generated f>", "exec")
    assert c.save() and c.path.is_file()
    assert oct(c.path.stat().st_mode & 0o777) == "0o600"
    mtime = c.path.stat().st_mtime_ns
    again = _fresh(tmp_path)
    assert marshal.dumps(again.compile(SRC, "<generated f>", "exec")) == marshal.dumps(code)
    assert (again.hits, again.misses) == (1, 0)
    assert not again.save() and c.path.stat().st_mtime_ns == mtime
    assert [p.name for p in c.path.parent.iterdir()] == [c.path.name]  # no temporary file left


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other python", "not a dict",
                                    "a dict of codes alone", "codes not a dict"])
def test_a_damaged_file_is_ignored_and_rebuilt(tmp_path, damage, caplog):
    c = _fresh(tmp_path)
    c.compile(SRC, "<generated f>", "exec")
    c.save()
    data = c.path.read_bytes()
    magic = importlib.util.MAGIC_NUMBER
    c.path.write_bytes({"garbage": magic + b"\x00\xffnot marshal", "truncated": data[: len(data) // 2],
                        "other python": b"\x00\x00\r\n" + data[len(magic):],
                        "not a dict": magic + marshal.dumps([1, 2]),
                        "a dict of codes alone": magic + marshal.dumps(marshal.loads(data[len(magic):])["codes"]),
                        "codes not a dict": magic + marshal.dumps({"saves": 1, "last": {}, "codes": [1]})}[damage])
    bad = _fresh(tmp_path)
    assert bad.codes == {}
    bad.compile(SRC, "<generated f>", "exec")
    assert bad.misses == 1 and bad.save()
    assert _fresh(tmp_path).codes.keys() == bad.codes.keys()


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX permissions")
def test_a_file_others_can_write_is_not_trusted(tmp_path, caplog):
    c = _fresh(tmp_path)
    c.compile(SRC, "<generated f>", "exec")
    c.save()
    os.chmod(c.path, 0o666)
    assert _fresh(tmp_path).codes == {}
    assert "not private" in caplog.text


def test_a_place_it_cannot_write_costs_nothing_but_the_cache(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    c = CodeCache(cache_path(blocker))  # its folder would be inside a file
    c.compile(SRC, "<generated f>", "exec")
    assert c.save() is False


def test_a_handful_of_new_pieces_does_not_rewrite_the_file(tmp_path):
    """A frozen attrs class's __hash__ text differs in every process: a start that compiled only
    such pieces leaves the file as it is (neither growing it nor rewriting it)."""
    c = _fresh(tmp_path)
    c.compile(SRC, "<generated f>", "exec")
    assert c.save()
    mtime = c.path.stat().st_mtime_ns
    nxt = _fresh(tmp_path)
    for i in range(codecache.MIN_NEW - 1):
        nxt.compile(f"x = {i}\n", f"<salted {i}>", "exec")
    assert not nxt.save() and c.path.stat().st_mtime_ns == mtime
    nxt.compile("x = 'one more'\n", "<salted>", "exec")
    assert nxt.save() and len(_fresh(tmp_path).codes) == codecache.MIN_NEW + 1


def test_pieces_no_process_used_for_keep_saves_saves_are_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(codecache, "MIN_NEW", 1)
    monkeypatch.setattr(codecache, "KEEP_SAVES", 3)
    c = _fresh(tmp_path)
    c.compile("old = 1\n", "<old library>", "exec")
    c.compile(SRC, "<generated f>", "exec")
    assert c.save()
    for i in range(4):  # starts that use f, not old, and each compile something new
        nxt = _fresh(tmp_path)
        nxt.compile(SRC, "<generated f>", "exec")
        nxt.compile(f"x = {i}\n", f"<new {i}>", "exec")
        assert nxt.save()
        names = {code.co_filename for code in _fresh(tmp_path).codes.values()}
        assert ("<old library>" in names) == (i < 2) and "<generated f>" in names
    assert names == {"<generated f>", "<new 1>", "<new 2>", "<new 3>"}


PROBE = """
import json, sys
from convlint.server.lsp import codecache
cache = codecache.install(__import__("pathlib").Path(sys.argv[1]))
from lsprotocol import types as T
import cattrs
conv = __import__("pygls.protocol", fromlist=["x"]).default_converter()
p = conv.structure({"textDocument": {"uri": "file:///a.py"}, "position": {"line": 1, "character": 2}},
                   T.HoverParams)
out = {"hits": cache.hits, "misses": cache.misses, "repr": repr(p), "eq": p == T.HoverParams(
       T.TextDocumentIdentifier("file:///a.py"), T.Position(1, 2)),
       "unstructured": conv.unstructure(p), "annotations": str(T.Position.__init__.__annotations__),
       "hints": str(__import__("typing").get_type_hints(T.WorkspaceEdit))}  # string annotations: typing's ForwardRef
codecache.save()
print(json.dumps(out))
"""


def _probe(folder) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, str(folder)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_lsprotocol_and_cattrs_from_the_cache_behave_as_compiled(tmp_path):
    cold, warm = _probe(tmp_path), _probe(tmp_path)
    assert cold["misses"] > 500  # lsprotocol's classes and the converter's hooks
    # a frozen attrs class's __hash__ source holds a per-process string hash: that one cannot be reused
    assert warm["misses"] <= 3 and warm["hits"] >= cold["misses"] - 3
    assert "TextDocumentEdit" in warm["hints"]
    for k in ("repr", "eq", "unstructured", "annotations", "hints"):
        assert warm[k] == cold[k]
    assert warm["eq"] is True


async def test_a_second_server_start_compiles_nothing_the_first_compiled(tmp_path):
    cache = tmp_path / "shared-cache"
    seen = []
    for i in range(2):
        d = tmp_path / f"run{i}"
        d.mkdir()
        ws = workspace(d)
        client = await start(d, ws, cache=cache, heavyChecks=False)
        try:
            uri = open_doc(client, ws / "convert.py")
            ds = await diagnostics(client, uri, lambda ds: bool(ds))
            status = await command(client, "convlint.status")
            seen.append(([(x.code, x.range) for x in ds], status["bytecode_cache"]))
        finally:
            await stop(client)
    (first, cold), (second, warm) = seen
    assert first == second
    assert cold["misses"] > 500
    assert warm["misses"] <= 3 and warm["hits"] >= cold["misses"] - 3  # see above: frozen classes' hashes
    assert warm["path"].startswith(str(cache))


def _prepare(cache, **env):
    return subprocess.run([sys.executable, "-m", "convlint", "serve", "--prepare"], capture_output=True, text=True,
                          env=dict(os.environ, CONVLINT_CACHE_DIR=str(cache), **env), timeout=300)


async def test_prepare_fills_the_cache_so_that_the_first_editor_start_compiles_nothing(tmp_path):
    """`convlint serve --prepare` (make install and the extension run it): the first start a user
    sees is a warm one."""
    cache = tmp_path / "cache"
    r = _prepare(cache)
    assert r.returncode == 0, r.stderr
    assert "start-up cache ready" in r.stderr and str(cache_path(cache)) in r.stderr and r.stdout == ""
    assert len(CodeCache(cache_path(cache)).codes) > 500
    ws = workspace(tmp_path)
    client = await start(tmp_path, ws, cache=cache, heavyChecks=False)
    try:
        uri = open_doc(client, ws / "convert.py")
        assert await diagnostics(client, uri, lambda ds: bool(ds))
        status = await command(client, "convlint.status")
    finally:
        await stop(client)
    assert status["bytecode_cache"]["misses"] <= 3 and status["bytecode_cache"]["hits"] > 500


def test_prepare_says_why_it_could_not_and_when_the_cache_is_off(tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    r = _prepare(not_a_folder)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "wrote no cache" in r.stderr and "CONVLINT_CACHE_DIR" in r.stderr
    r = _prepare(tmp_path / "c", CONVLINT_BYTECODE_CACHE="0")
    assert r.returncode == 0 and "off" in r.stderr and not (tmp_path / "c").exists()
