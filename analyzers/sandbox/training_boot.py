"""``convlint train-check`` runs the user's script through this file, in its own process.

    python -m convlint.analyzers.sandbox.training_boot --trace FILE [--status FILE] [--max-steps N]
        [--extend-steps N] [--max-epochs N] [--every K] [--code FILE] -- SCRIPT [ARGS...]

It installs import hooks that attach the probes when ``torch`` or ``keras`` finish importing
(so a script that uses only one framework never imports the other), runs the script as
``__main__``, and stops it early once a fault is certain or the step limit is reached. The
trace streams to FILE as JSON lines; FILE.status gets the exit status and any exception.
"""

from __future__ import annotations

import json
import os
import sys

from .record import Recorder, StopTraining
from .tracer_boot import PostImportHook, run_as_main

REC: Recorder | None = None
SCRIPT = ""
MAX_EPOCHS: int | None = None


def _rec() -> Recorder:
    """The run's recorder: main() creates it before any probe can be attached."""
    if REC is None:
        raise RuntimeError("convlint train-check: no recorder yet (main() sets it up)")
    return REC


def _patch_torch(torch) -> None:
    from . import probe_torch

    probe_torch.install(_rec(), SCRIPT)


def _patch_keras(keras) -> None:
    from . import probe_keras

    probe_keras.install(_rec(), SCRIPT, MAX_EPOCHS)


PATCHES = {"torch": _patch_torch, "keras": _patch_keras}
DONE: set = set()


def _apply(name: str, module) -> None:
    if name in DONE:
        return
    DONE.add(name)
    try:
        PATCHES[name](module)
    except Exception as e:  # a framework version we do not know: run unprobed, say so
        print(
            f"convlint train-check: could not attach the {name} probe: {type(e).__name__}: {e}",
            file=sys.stderr,
        )
        _rec().set_meta(**{f"{name}_probe_error": f"{type(e).__name__}: {e}"[:300]})


def main(argv: list) -> int:
    global REC, SCRIPT, MAX_EPOCHS
    trace, status_file, max_steps, every, code = None, None, None, None, None
    extend = None
    while argv and argv[0].startswith("--"):
        flag = argv.pop(0)
        if flag == "--":
            break
        val = argv.pop(0)
        if flag == "--trace":
            trace = val
        elif flag == "--status":
            status_file = val
        elif flag == "--max-steps":
            max_steps = int(val)
        elif flag == "--extend-steps":  # an undecided run is watched up to N steps
            extend = int(val)
        elif flag == "--max-epochs":
            MAX_EPOCHS = int(val)
        elif flag == "--every":
            every = int(val)
        elif flag == "--code":  # the text to run in the script's name (a notebook's joined cells)
            code = val
    SCRIPT = os.path.abspath(argv[0])
    REC = Recorder(trace, every=every, max_steps=max_steps, stop_on_fault=True, extend_to=extend)
    for name in PATCHES:
        if name in sys.modules:
            _apply(name, sys.modules[name])
    sys.meta_path.insert(0, PostImportHook(PATCHES, _apply))
    with open(code or SCRIPT, encoding="utf-8") as fh:
        src = fh.read()
    status, error, stop = run_as_main(SCRIPT, src, argv[1:], stop=(StopTraining,))
    stopped = stop.reason if stop is not None else None
    if (
        error is not None
        and REC.stopped
        and "StopTraining" in (error.get("message", "") + error.get("traceback", ""))
    ):
        # a stop raised inside a compiled step (tf.function) reaches the script as the
        # framework's own error: it was ours
        status, error, stopped = 0, None, REC.stopped
    REC.close(stopped=stopped or REC.stopped)
    if status_file:
        with open(status_file, "w", encoding="utf-8") as fh:
            json.dump({"status": status, "error": error, "stopped": stopped or REC.stopped}, fh)
    return 0 if error is None else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
