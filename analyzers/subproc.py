"""Running a user's script in a child process: resource limits and bounded output.

Used by ``trace`` and ``train-check``. The child gets no core dumps and an address-space limit
(``--memory-limit``, by default the machine's memory); its output goes to files of which only the tail is read back, so a chatty
or hostile script cannot fill convlint's memory.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

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
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            if hard != resource.RLIM_INFINITY:
                b = min(b, hard)
            resource.setrlimit(resource.RLIMIT_AS, (b, hard if hard != resource.RLIM_INFINITY else b))
    return apply


def tail(path: str | Path, limit: int = OUTPUT_TAIL) -> str:
    """The last ``limit`` bytes of a file, decoded; empty when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, 2)
            n = fh.tell()
            fh.seek(max(0, n - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


@dataclass
class Finished:
    returncode: int  # negative: killed by that signal
    timed_out: bool
    stderr: str  # the tail of the child's stderr


def run_script_process(cmd: list, *, cwd: str, env: dict, folder: str | Path, timeout: float,
                       memory_mb: int | None = None, output_limit: int = OUTPUT_TAIL) -> Finished:
    """Run ``cmd`` with the limits above, its stdout and stderr in files under ``folder``; kill
    it after ``timeout`` seconds. A command that cannot start raises ConvlintError."""
    from convlint.analyzers.errors import ConvlintError

    err_path = Path(folder) / "stderr"
    with open(Path(folder) / "stdout", "wb") as fo, open(err_path, "wb") as fe:
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL,
                                    preexec_fn=limits(memory_mb) if os.name == "posix" else None)
        except OSError as e:
            raise ConvlintError(f"cannot run {cmd[0]}: {e.strerror}", hint="check --python") from None
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
    return Finished(rc, timed_out, tail(err_path, output_limit))


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the process is, so ``finally`` blocks and context managers clean
    up (temporary folders, half-written files, child processes) as they do on Ctrl-C."""


def raise_on_sigterm() -> None:
    """Turn SIGTERM into ``Terminated`` in this process (the main thread). Python's default is
    to die at once, leaving temporary files and child processes behind."""
    import signal

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
