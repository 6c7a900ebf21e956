"""Running a user's script in a child process: resource limits and bounded output.

Used by ``trace`` and ``train-check``. The child gets no core dumps and, when asked, an
address-space limit; its output goes to files of which only the tail is read back, so a chatty
or hostile script cannot fill convlint's memory.
"""

from __future__ import annotations

from pathlib import Path

OUTPUT_TAIL = 64 * 1024  # bytes of a script's output kept


def limits(memory_mb: int | None = None):
    """A ``preexec_fn`` for ``subprocess.Popen`` (POSIX): no core dumps, optional RLIMIT_AS."""
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if memory_mb:
            b = int(memory_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (b, b))
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
