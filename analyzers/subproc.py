"""Running a user's script in a child process: resource limits and bounded output.

Used by ``trace`` and ``train-check``. The child gets no core dumps and, when asked, an
address-space limit; its output goes to files of which only the tail is read back, so a chatty
or hostile script cannot fill convlint's memory.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
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
    return Finished(rc, timed_out, tail(err_path, output_limit))
