"""Native libraries' own log lines (TFLite's "Created TensorFlow Lite XNNPACK delegate", absl and
oneDNN notices) go to file descriptor 2 directly, past Python's logging and warnings. Around a call
that may print them, fd 2 is pointed at a temporary file; the lines are kept for the debug log and
dropped. ``CONVLINT_NATIVE_LOGS=1`` (set by the CLI's ``-v``) lets them through.

No library's internals are touched: only this process's file descriptor, restored afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile

log = logging.getLogger(__name__)


@contextlib.contextmanager
def quiet():
    """Silence what native code writes to fd 2 inside the block (not Python's own writes
    to ``sys.stderr``, which is flushed first and keeps working)."""
    if os.environ.get("CONVLINT_NATIVE_LOGS") == "1":
        yield
        return
    try:
        fd = sys.stderr.fileno()
    # no real stderr (a captured stream): nothing to do
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), fd)
        try:
            yield
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode(errors="replace").strip()
            if text:
                log.debug("native log: %s", text[:2000])
