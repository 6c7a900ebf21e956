"""Compile a Relax IRModule for llvm, cache it by content hash, run it, capture intermediates.

The compiled library is cached on disk (``$CONVLINT_CACHE_DIR/tvm``, default
``~/.cache/convlint/tvm``), keyed by the model's content hash, the fixed input shapes, the import
route, the TVM version and convlint's own source (``cache.engine_fingerprint``: an import route
fixed in a newer convlint is not served from a module the older one compiled). A corrupt cache
entry is detected at load and rebuilt.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import cast

import numpy as np

from convlint.analyzers.cache import cache_dir  # noqa: F401  (re-exported)
from convlint.analyzers.errors import StepFailed

_MEMO: dict = {}


def cache_name(key: str) -> str:
    """The file name (without suffix) of the compiled module for ``key``."""
    import tvm

    from convlint.analyzers import cache

    return hashlib.sha256(
        f"{key}|tvm{tvm.__version__}|{cache.engine_fingerprint()}".encode()
    ).hexdigest()


def compile_cached(key: str, builder, input_names: list) -> TVMRunner:
    """Return a runner for the module ``builder()`` builds, compiling only on a cache miss.

    ``builder()`` returns ``(route, IRModule)``; the route is stored beside the library.
    """
    import tvm
    from tvm import relax

    full = cache_name(key)
    if full in _MEMO:
        return _MEMO[full]
    d = cache_dir() / "tvm"
    lib_path = d / f"{full}.so"
    route_path = d / f"{full}.route"
    lib = None
    if lib_path.exists() and route_path.exists():
        try:
            # typed as tvm_ffi's Module; tvm.runtime registers its own subclass for what it loads
            lib = cast("tvm.runtime.Module", tvm.runtime.load_module(str(lib_path)))
            route = route_path.read_text()
        except Exception:  # corrupt or from another build: rebuild it
            lib_path.unlink(missing_ok=True)
            lib = None
    if lib is None:
        import gc

        from convlint.analyzers.native import quiet

        # Relax's frontends log "BlockBuilder destroyed with remaining blocks" on fd 2 when their
        # builder is collected: collected here, inside the quiet block
        failed = None
        with quiet():
            try:
                lib, route = _build(builder, d, lib_path, route_path)
            except StepFailed as e:  # its message says it all; the frames would keep the builder
                failed = StepFailed(e.step, e.backend, e.message, op=e.op)
            gc.collect()
        if failed is not None:
            raise failed
    assert lib is not None  # loaded from the cache, or built (a failed build raised above)
    # tvm.cpu() is typed as tvm_ffi's Device; it returns tvm.runtime's registered subclass
    vm = relax.VirtualMachine(lib, cast("tvm.runtime.Device", tvm.cpu()))
    runner = TVMRunner(vm, input_names, route)
    _MEMO[full] = runner
    return runner


def _build(builder, d: Path, lib_path: Path, route_path: Path) -> tuple:
    """Import and compile, keeping the library in the cache: ``(executable, route)``."""
    import tvm

    try:
        route, mod = builder()
    except StepFailed:
        raise
    except Exception as e:
        raise StepFailed("compile", "tvm", f"TVM frontend refused the model: {_first_line(e)}",
                         op=_op_from_tvm_error(e)) from e
    try:
        # TVM annotates ``target`` as ``Target | None``; relax.build takes a target string too
        ex = tvm.compile(mod, target="llvm")  # pyright: ignore[reportArgumentType]
    except Exception as e:
        raise StepFailed("compile", "tvm", f"tvm.compile failed: {_first_line(e)}",
                         op=_op_from_tvm_error(e)) from e
    tmp = ""
    try:
        d.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".so", dir=d)
        os.close(fd)
        ex.export_library(tmp)
        os.replace(tmp, lib_path)
        route_path.write_text(route)
    except BaseException as e:  # the cache is an optimisation; never fail the check for it
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        if not isinstance(e, Exception):
            raise  # interrupted: cleaned up, now stop
    return ex, route


class TVMRunner:
    """Runs a compiled Relax VM. ``run`` returns outputs in order; the caller names them."""

    backend = "tvm"

    def __init__(self, vm, input_names: list, route: str):
        self.vm = vm
        self.input_names = list(input_names)
        self.route = route

    def _args(self, inputs: dict) -> list:
        import tvm

        vals = [inputs[n] if n in inputs else list(inputs.values())[i]
                for i, n in enumerate(self.input_names)]
        return [tvm.runtime.tensor(np.ascontiguousarray(v)) for v in vals]

    def run(self, inputs: dict) -> list:
        try:
            out = self.vm["main"](*self._args(inputs))
        except Exception as e:
            raise StepFailed("run", "tvm", _first_line(e)) from e
        return [np.asarray(o.numpy()) for o in _flatten(out)]

    def intermediates(self, inputs: dict) -> dict:
        """Every kernel call's output, ``{"0007:conv2d": ndarray}``, in execution order."""
        captured: dict = {}

        def hook(func, func_symbol, before_run, ret_value, *args):
            if before_run or str(func_symbol).startswith("vm.builtin"):
                return
            if args and hasattr(args[-1], "numpy"):
                captured[f"{len(captured):04d}:{func_symbol}"] = args[-1].numpy().copy()

        self.vm.set_instrument(hook)
        try:
            self.vm["main"](*self._args(inputs))
        except Exception as e:
            raise StepFailed("run", "tvm", _first_line(e)) from e
        finally:
            self.vm.set_instrument(lambda *a: None)
        return captured


def _flatten(out) -> list:
    if hasattr(out, "numpy"):
        return [out]
    res = []
    for o in out:
        res.extend(_flatten(o))
    return res


def _first_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    # TVM errors end with the useful line; tracebacks start with "Traceback"
    useful = [ln for ln in lines if not ln.startswith(("Traceback", "File ", "^", "#"))]
    text = (useful[-1] if useful else type(e).__name__)
    return text[:400]


def _op_from_tvm_error(e: BaseException) -> str | None:
    import re

    text = str(e)
    for pat in (
        r"not supported[^:]*:\s*\{?'?([A-Za-z_][\w]*)",
        r"operators? (?:are )?not (?:yet )?(?:supported|implemented)[^\w]*\{?'?([A-Za-z_][\w]*)",
        r"OpNotImplemented[^\w]*.*?([A-Z_][A-Z0-9_]{2,})",
        r"([A-Z][A-Za-z]+) is not (?:supported|implemented)",
    ):
        m = re.search(pat, text)
        if m:
            return m.group(1)
    return None
