"""``convlint train-check`` runs the user's script through this file, in its own process.

    python -m convlint.analyzers.training.boot --trace FILE [--status FILE] [--max-steps N]
        [--max-epochs N] [--every K] -- SCRIPT [ARGS...]

It installs import hooks that attach the probes when ``torch`` or ``keras`` finish importing
(so a script that uses only one framework never imports the other), runs the script as
``__main__``, and stops it early once a fault is certain or the step limit is reached. The
trace streams to FILE as JSON lines; FILE.status gets the exit status and any exception.
"""

from __future__ import annotations

import builtins
import json
import os
import sys
import traceback

from ..scripts.tracer_boot import PostImportHook
from .record import Recorder, StopTraining, creation_site

REC: Recorder | None = None
SCRIPT = ""
MAX_EPOCHS: int | None = None


def _patch_torch(torch) -> None:
    from . import probe_torch

    probe_torch.install(REC, SCRIPT)
    orig = torch.optim.Optimizer.__init__

    def init(self, *a, **k):
        REC.set_meta(optimizer_site=creation_site(SCRIPT))
        orig(self, *a, **k)

    torch.optim.Optimizer.__init__ = init
    for name in probe_torch._LOSSES:  # where the loss is computed: the line that calls it
        F = torch.nn.functional  # noqa: N806
        fn = getattr(F, name, None)
        if fn is None:
            continue

        def make(fn=fn):
            def loss(*a, **k):
                if "loss_site" not in REC.meta:
                    REC.set_meta(loss_site=creation_site(SCRIPT))
                return fn(*a, **k)
            return loss

        setattr(F, name, make())


def _patch_keras(keras) -> None:
    from . import probe_keras

    probe_keras.install(REC, SCRIPT, MAX_EPOCHS)
    fit = keras.Model.fit

    def fit_wrapper(self, *a, **k):
        REC.set_meta(fit_site=creation_site(SCRIPT))
        out = fit(self, *a, **k)
        if REC.stopped:  # a certain fault or the step limit: the rest of the script adds nothing
            raise StopTraining(REC.stopped)
        return out

    keras.Model.fit = fit_wrapper
    compile_ = keras.Model.compile

    def compile_wrapper(self, *a, **k):
        REC.set_meta(loss_site=creation_site(SCRIPT))
        return compile_(self, *a, **k)

    keras.Model.compile = compile_wrapper
    try:
        from keras.src.optimizers.base_optimizer import BaseOptimizer
    except ImportError:  # another Keras layout: no optimizer line, the rest works
        return
    oinit = BaseOptimizer.__init__

    def opt_init(self, *a, **k):
        REC.set_meta(optimizer_site=creation_site(SCRIPT))
        oinit(self, *a, **k)

    BaseOptimizer.__init__ = opt_init


PATCHES = {"torch": _patch_torch, "keras": _patch_keras}
DONE: set = set()


def _apply(name: str, module) -> None:
    if name in DONE:
        return
    DONE.add(name)
    try:
        PATCHES[name](module)
    except Exception as e:  # a framework version we do not know: run unprobed, say so
        print(f"convlint train-check: could not attach the {name} probe: {type(e).__name__}: {e}", file=sys.stderr)
        REC.set_meta(**{f"{name}_probe_error": f"{type(e).__name__}: {e}"[:300]})


def main(argv: list) -> int:
    global REC, SCRIPT, MAX_EPOCHS
    trace, status_file, max_steps, every = None, None, None, None
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
        elif flag == "--max-epochs":
            MAX_EPOCHS = int(val)
        elif flag == "--every":
            every = int(val)
    SCRIPT = os.path.abspath(argv[0])
    REC = Recorder(trace, every=every, max_steps=max_steps, stop_on_fault=True)
    for name in PATCHES:
        if name in sys.modules:
            _apply(name, sys.modules[name])
    sys.meta_path.insert(0, PostImportHook(PATCHES, _apply))
    with open(SCRIPT, encoding="utf-8") as fh:
        src = fh.read()
    sys.argv = [SCRIPT, *argv[1:]]
    sys.path[0] = os.path.dirname(SCRIPT)
    g = {"__name__": "__main__", "__file__": SCRIPT, "__builtins__": builtins}
    status, error, stopped = 0, None, None
    try:
        exec(compile(src, SCRIPT, "exec"), g)
    except StopTraining as e:
        stopped = e.reason
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException as e:
        tb = traceback.extract_tb(e.__traceback__)
        line = next((fr.lineno for fr in reversed(tb) if os.path.abspath(fr.filename) == SCRIPT), None)
        error = {"type": type(e).__name__, "message": str(e)[:2000], "line": line,
                 "traceback": "".join(traceback.format_exception(e))[-4000:]}
        status = 3
    REC.close(stopped=stopped or REC.stopped)
    if status_file:
        with open(status_file, "w", encoding="utf-8") as fh:
            json.dump({"status": status, "error": error, "stopped": stopped or REC.stopped}, fh)
    return 0 if error is None else 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
