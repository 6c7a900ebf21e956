"""A bytecode cache for the source text that libraries generate and compile at run time.

lsprotocol defines some 580 attrs classes; for each, attrs writes ``__init__``, ``__repr__``,
``__eq__`` and friends as source text and compiles it when the module is imported, and cattrs
does the same for each message type the first time one arrives. Compiling that generated text
is about 40% of the language server's start-up. ``@dataclass`` does the same (with ``exec``) for
the dataclasses of convlint and of the libraries it imports, and the script walker compiles a
function per syntax node type it meets (``facts._walker_source``). Python keeps the bytecode of
modules in ``__pycache__``; this keeps the bytecode of the generated text the same way, so a
server start after the first one only unmarshals it.

How: ``install`` puts a ``compile`` (or ``exec``) into the globals of the modules that call the
builtin (attrs, cattrs, dataclasses, typing for each string annotation it resolves, the walker; a
module global shadows the builtin for that module only; nothing else changes). It compiles as the
builtin would, with the caller's ``__future__`` flags, and looks the result up first by a hash of
(source, file name, mode, flags). Code objects are stored with ``marshal`` in one file per Python
bytecode version: ``$CONVLINT_CACHE_DIR/bytecode/<magic>.marshal``. A file that is missing,
corrupt, for another Python, or not private to this user is ignored (and replaced at the next
save); generated text that is not in it is compiled as before. ``save`` writes it atomically
(``report.io.write_new_file``) when there is something new (the server calls it once the first
requests are served, and at exit).

Some generated text never repeats: a frozen attrs class's ``__hash__`` holds a string hash, which
differs in every process. So that the file neither grows by one such piece at every start nor is
rewritten for it, a process that found the file and compiled fewer than ``MIN_NEW`` new pieces
(well under a millisecond of compiling) does not rewrite it, and each save drops the pieces that no
process used in the last ``KEEP_SAVES`` saves (such pieces, and those of a library version since
upgraded). The file counts its saves and, per piece, the last save whose process used it.
"""

from __future__ import annotations
import __future__

import builtins
import hashlib
import importlib.util
import logging
import marshal
import os
import sys
from pathlib import Path

log = logging.getLogger("convlint.server")

# the compiler flags a __future__ import sets; a caller's code object carries them in co_flags
# (nested_scopes' flag is CO_NESTED, which co_flags has for any nested function: not inherited)
FUTURE_FLAGS = 0
for _name in __future__.all_feature_names:
    if _name != "nested_scopes":
        FUTURE_FLAGS |= getattr(__future__, _name).compiler_flag

MIN_NEW = 8  # a process that found the file rewrites it only when it compiled at least this many new pieces
KEEP_SAVES = 16  # a save drops the pieces no process used in this many saves (see the module's docstring)
_builtin_compile = builtins.compile
_builtin_exec = builtins.exec


def enabled() -> bool:
    """Whether the server keeps this cache (``CONVLINT_BYTECODE_CACHE=0`` turns it off)."""
    return os.environ.get("CONVLINT_BYTECODE_CACHE", "1") != "0"


def cache_path(folder: Path) -> Path:
    return folder / "bytecode" / f"{importlib.util.MAGIC_NUMBER.hex()}.marshal"


class CodeCache:
    def __init__(self, path: Path):
        self.path = path
        self.codes: dict = {}
        self.saves = 0  # how many times the file was written
        self.last: dict = {}  # piece -> the save whose process last used it
        self.found = False  # whether the file was there (and readable) at the start
        self.used: set = set()
        self.new: dict = {}
        self.hits = self.misses = 0
        self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                st = os.fstat(f.fileno())
                # the bytecode in it runs in this process: trust it only as one trusts __pycache__
                if hasattr(os, "getuid") and (st.st_uid != os.getuid() or st.st_mode & 0o022):
                    log.warning("bytecode cache %s is not private to this user; not used", self.path)
                    return
                data = f.read()
        except OSError:
            return
        magic = importlib.util.MAGIC_NUMBER
        try:
            content = marshal.loads(data[len(magic):]) if data[:len(magic)] == magic else None
        except (EOFError, ValueError, TypeError):
            content = None
        if not (isinstance(content, dict) and isinstance(content.get("codes"), dict)
                and isinstance(content.get("last"), dict) and isinstance(content.get("saves"), int)):
            log.warning("bytecode cache %s is unreadable; it will be rebuilt", self.path)
            return
        self.codes, self.last, self.saves = content["codes"], content["last"], content["saves"]
        self.found = True

    def compile(self, source, filename, mode, flags=0, dont_inherit=False, optimize=-1, **kw):
        """The builtin ``compile``, cached for source text with the caller's ``__future__`` flags."""
        if not dont_inherit:
            flags |= sys._getframe(1).f_code.co_flags & FUTURE_FLAGS
        if not isinstance(source, str) or kw or optimize != -1 or flags & ~FUTURE_FLAGS:
            return _builtin_compile(source, filename, mode, flags, True, optimize, **kw)
        return self._code(source, filename, mode, flags)

    def exec(self, source, globals=None, locals=None, /, **kw):
        """The builtin ``exec``: source text is compiled through the cache (as exec compiles it: file
        name ``<string>``, the caller's ``__future__`` flags), then run in the namespaces given, or
        the caller's when none are."""
        caller = sys._getframe(1)
        if globals is None:
            globals = caller.f_globals
            locals = caller.f_locals if locals is None else locals
        flags = caller.f_code.co_flags & FUTURE_FLAGS
        if isinstance(source, str):
            source = self._code(source, "<string>", "exec", flags)
        elif isinstance(source, (bytes, bytearray)):  # compiled here, else it would get this module's flags
            source = _builtin_compile(source, "<string>", "exec", flags, True)
        return _builtin_exec(source, globals, globals if locals is None else locals, **kw)

    def _code(self, source: str, filename, mode: str, flags: int):
        h = hashlib.blake2b(digest_size=16)
        h.update(f"{mode}\0{flags}\0{filename}\0".encode("utf-8", "surrogatepass"))
        h.update(source.encode("utf-8", "surrogatepass"))
        key = h.digest()
        code = self.codes.get(key)
        if code is None:
            code = _builtin_compile(source, filename, mode, flags, True)
            self.codes[key] = self.new[key] = code
            self.misses += 1
            log.debug("bytecode cache miss: %s", filename)
        else:
            self.hits += 1
        self.used.add(key)
        return code

    def save(self) -> bool:
        """Write the file when this process compiled enough that it did not hold (everything new when
        there was no file). True if written."""
        if not self.new or (self.found and len(self.new) < MIN_NEW):
            return False
        saves = self.saves + 1
        last = {**self.last, **dict.fromkeys(self.used, saves)}
        keep = {k for k in self.codes if last.get(k, saves) > saves - KEEP_SAVES}
        codes = {k: v for k, v in self.codes.items() if k in keep}
        last = {k: n for k, n in last.items() if k in keep}
        from convlint.analyzers.errors import ConvlintError
        from convlint.analyzers.report.io import write_new_file

        try:  # atomically, through a private (0600) temporary file
            write_new_file(str(self.path), importlib.util.MAGIC_NUMBER + marshal.dumps(
                {"saves": saves, "last": last, "codes": codes}))
        except ConvlintError as e:  # a read-only or full disk: the next start compiles again
            log.warning("cannot write the bytecode cache %s: %s", self.path, e.message)
            return False
        self.codes, self.last, self.saves, self.found = codes, last, saves, True
        self.new = {}
        return True


_active: CodeCache | None = None


def install(folder: Path) -> CodeCache:
    """Route the compile calls of attrs, cattrs and the script walker through one cache. Call before
    lsprotocol is imported."""
    global _active
    if _active is None:
        import attr._make

        _active = CodeCache(cache_path(folder))
        import dataclasses

        dataclasses.exec = _active.exec  # each @dataclass's __init__, __repr__, __eq__, ... (_create_fn)
        attr._make.compile = _active.compile  # first: importing cattrs defines attrs classes
        import cattrs.gen
        import cattrs.gen.typeddicts

        cattrs.gen.compile = cattrs.gen.typeddicts.compile = _active.compile
        import typing

        typing.compile = _active.compile  # each typing.ForwardRef (resolving lsprotocol's string annotations)
        from convlint.analyzers.scripts import facts

        facts.compile = _active.compile  # the script walker's per-node-type functions (facts._walker_source)
    return _active


def save() -> bool:
    return _active.save() if _active is not None else False


def stats() -> dict | None:
    """For the server's status: None when the cache is off (CONVLINT_BYTECODE_CACHE=0)."""
    if _active is None:
        return None
    return {"path": str(_active.path), "hits": _active.hits, "misses": _active.misses, "entries": len(_active.codes)}
