"""Progress of a pair check as steps of a known count, so a progress bar advances through the
check's stages (load, run, the TVM compile and run of each model, localization, repair) instead
of showing ``0/?`` for the whole check.

In: the caller's progress callback (or None) and the DiffRequest. Out: a callback that passes each
message on as a ``Step`` (a str with ``done`` and ``total``); a message that is no known stage
passes with the count so far. Stages are counted as they are first seen, whatever their order.
"""

from __future__ import annotations

from collections.abc import Callable


def stage_of(msg: str) -> str | None:
    """The stage a progress message announces, e.g. ``source: running 32 inputs on TVM`` ->
    ``source:tvm-run``; None for other messages."""
    role, sep, rest = str(msg).partition(": ")
    if not sep:
        return None
    if role in ("source", "target"):
        words = rest.split()
        if not words:
            return None
        if words[0] == "running":
            return f"{role}:{'tvm-run' if rest.endswith('on TVM') else 'run'}"
        if words[0] in ("loading", "compiling"):
            return f"{role}:{words[0]}"
        return None
    if role == "localizing":
        return f"localizing:{rest.split()[0]}" if rest.split() else None
    if role == "repair":
        return "repair"
    return None


def expected_stages(use_tvm: bool, localize: bool, repair: bool) -> int:
    """How many stages a pair check has at most: per model load and run (and compile and run
    through TVM), then the two localization steps and the repair."""
    return 2 * (2 + 2 * use_tvm) + 2 * localize + repair


def staged(progress: Callable | None, req) -> Callable | None:
    if progress is None:
        return None
    from convlint.analyzers.project import Step

    total = expected_stages(req.use_tvm, req.localize, req.repair)
    seen: set = set()

    def report(msg) -> None:
        key = stage_of(msg)
        if key is not None:
            seen.add(key)
        done = min(len(seen), total)
        progress(Step(str(msg), done, total))

    return report
