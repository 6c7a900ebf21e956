"""Running a user's script in a child process: resource limits and bounded output.

Used by ``trace`` and ``train-check``. The child gets no core dumps and an address-space limit
(``--memory-limit``, by default the machine's memory); its output is read through a pipe of
which only the tail is kept, so a chatty or hostile script fills neither convlint's memory nor
the disk.
"""

from __future__ import annotations

import logging
import os
import subprocess
from dataclasses import dataclass

log = logging.getLogger(__name__)

OUTPUT_TAIL = 64 * 1024  # bytes of a script's output kept


def default_memory_mb() -> int:
    """The address-space limit a script gets unless told otherwise: the machine's physical
    memory, at least 8 GiB (TensorFlow and torch reserve 2 GiB of address space just by being
    imported). A runaway script then fails with MemoryError instead of swapping the machine to a
    halt or waking the out-of-memory killer."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        ram = 0
    return max(int(ram), 8192)


def limits(memory_mb: int | None = None):
    """A ``preexec_fn`` for ``subprocess.Popen`` (POSIX): no core dumps and an address-space
    limit (RLIMIT_AS) of ``memory_mb`` MiB (None: ``default_memory_mb()``; 0: none)."""
    mb = default_memory_mb() if memory_mb is None else int(memory_mb)

    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if mb > 0:
            b = mb * 1024 * 1024
            _, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                b = min(b, hard)
            resource.setrlimit(
                resource.RLIMIT_AS, (b, hard if hard != resource.RLIM_INFINITY else b)
            )
    return apply


def require_consent(
    allowed: bool, what: str, hint: str = "pass --allow-exec if you trust this script"
) -> None:
    """Refuse to run user code without consent: ``what`` says what would run (\"convlint trace
    runs x.py, which executes its code\"); exit 2 with ``hint`` saying how to consent."""
    if not allowed:
        from convlint.analyzers import rules as R
        from convlint.analyzers.errors import ConvlintError

        raise ConvlintError(
            f"{what}; refusing without consent", rule=R.BAD_ARGUMENTS.code, hint=hint
        )


class _Tail:
    """Drain a pipe in a thread, keeping only its last ``limit`` bytes (and the total count):
    a script that prints without end costs neither memory nor disk."""

    def __init__(self, pipe, limit: int):
        import collections
        import threading

        self.limit, self.total, self.chunks = limit, 0, collections.deque()
        self.thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self.thread.start()

    def _read(self, pipe) -> None:
        kept = 0
        try:
            for chunk in iter(lambda: pipe.read1(1 << 16), b""):
                self.total += len(chunk)
                self.chunks.append(chunk)
                kept += len(chunk)
                while self.chunks and kept - len(self.chunks[0]) >= self.limit:
                    kept -= len(self.chunks.popleft())
        except (OSError, ValueError):  # the pipe closed under us: what was read is kept
            log.debug("output pipe closed", exc_info=True)
        finally:
            pipe.close()

    def text(self) -> str:
        self.thread.join(timeout=5)
        data = b"".join(self.chunks)[-self.limit:]
        cut = self.total - len(data)
        return (f"[{cut} earlier bytes of output not kept]\n" if cut > 0 else "") + data.decode(
            "utf-8", "replace"
        )


@dataclass
class Finished:
    returncode: int  # negative: killed by that signal
    timed_out: bool
    output: str  # the tail of the child's stdout and stderr, interleaved as written


def run_script_process(
    cmd: list,
    *,
    cwd: str,
    env: dict,
    timeout: float,
    memory_mb: int | None = None,
    output_limit: int = OUTPUT_TAIL,
) -> Finished:
    """Run ``cmd`` with the limits above; kill it after ``timeout`` seconds. Its output (stdout
    and stderr together) is read through a pipe of which only the last ``output_limit`` bytes
    are kept. A command that cannot start raises ConvlintError."""
    from convlint.analyzers.errors import ConvlintError

    try:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=limits(memory_mb) if os.name == "posix" else None,
        )
    except OSError as e:
        raise ConvlintError(f"cannot run {cmd[0]}: {e.strerror}", hint="check --python") from None
    out = _Tail(proc.stdout, output_limit)
    timed_out = False
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        rc = proc.wait()
    except BaseException:  # interrupted or terminated (a cancel): the script goes too, now
        proc.kill()
        proc.wait()
        raise
    return Finished(rc, timed_out, out.text())


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so ``finally`` blocks and context managers clean
    up (temporary folders, half-written files, child processes) as they do on Ctrl-C."""


def worker_plugins() -> list:
    """The modules CONVLINT_WORKER_PLUGINS names (comma-separated), imported: every worker process
    (`check`'s pool, the language server's worker) loads them before its first job. A plugin may
    add job kinds (its ``JOBS`` table, for the server's worker) or wrap engine functions; the tests
    of crash isolation use it (tests/worker_hooks.py), so that no test hook lives in the product."""
    import importlib

    names = (os.environ.get("CONVLINT_WORKER_PLUGINS") or "").split(",")
    return [importlib.import_module(n.strip()) for n in names if n.strip()]


def model_memory_mb() -> int:
    """The memory ceiling for running models, in MiB: CONVLINT_MEMORY_LIMIT_MB, else the
    machine's memory (``default_memory_mb``); 0 lifts it."""
    raw = os.environ.get("CONVLINT_MEMORY_LIMIT_MB")
    try:
        return default_memory_mb() if raw in (None, "") else max(0, int(raw))
    except ValueError:
        return default_memory_mb()


_CEILING_MB = 0


def limit_memory(mb: int | None = None) -> int:
    """Put this process under a ceiling of ``mb`` MiB (None: ``model_memory_mb()``) of data
    memory (RLIMIT_DATA: heap and anonymous mappings, not the shared libraries TensorFlow and
    torch map), so a model that allocates without bound fails its own job with an allocation
    error instead of swapping the machine or waking the out-of-memory killer. Returns the
    ceiling set (0: none, or not a POSIX system)."""
    global _CEILING_MB
    mb = model_memory_mb() if mb is None else mb
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return 0
    if mb <= 0:
        return 0
    which = getattr(resource, "RLIMIT_DATA", resource.RLIMIT_AS)
    b = mb * 1024 * 1024
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        b = min(b, hard)
    try:
        resource.setrlimit(which, (b, hard))
    except (ValueError, OSError):
        log.debug("could not set the memory ceiling", exc_info=True)
        return 0
    _CEILING_MB = b // (1024 * 1024)
    return _CEILING_MB


def memory_ceiling_mb() -> int:
    """The ceiling ``limit_memory`` set in this process (0: none)."""
    return _CEILING_MB


def init_worker() -> None:
    """The initializer of a worker process: SIGTERM cleans up (raise_on_sigterm), the memory
    ceiling is set (limit_memory), plugins load."""
    raise_on_sigterm()
    limit_memory()
    worker_plugins()


def raise_on_sigterm() -> None:
    """Turn SIGTERM into ``Terminated`` in this process (the main thread). Python's default is
    to die at once, leaving temporary files and child processes behind."""
    import signal

    def handler(signum, frame):
        global _TERMINATED
        _TERMINATED = True
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)


_TERMINATED = False


def terminated() -> bool:
    """Whether SIGTERM arrived (after ``raise_on_sigterm``), even if the exception it raised was
    swallowed somewhere."""
    return _TERMINATED
