"""``convlint check --executor ray``: the model pairs checked as Ray tasks, one task per pair.

In: the pairs to check (``(index, pair, cache key)``), the check options, and the project's
callbacks (``task`` checks one pair in a worker and returns its report dict; ``done`` caches a
report and counts it; ``crashed`` makes the CL014 report of a pair that kills its worker). Out:
``{index: report dict}``, each report with an added ``executor`` field
(``{"name": "ray", "retries": n}``).

Each task runs in a worker process that exits after it (``max_calls=1``), so a converter that
segfaults or leaks takes down one worker, never the run; each asks for 1 CPU and
``memory_mb`` MiB. A task whose worker dies is submitted once more (the retry is recorded); a
pair that kills its second worker too is a CL014 crash (a worker dies by a native crash, Ray's
memory monitor or a lost node). Results come back with ``ray.wait`` as
they finish and are cached at once, so an interrupted run keeps them. A pair's ``runtime-env``
(config) is passed as Ray's ``runtime_env``. Without an address a local Ray is started on
127.0.0.1 (no dashboard) for this run. Ray is imported here only, and only when asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from convlint.analyzers.errors import ConvlintError

MEMORY_MB = 2048  # the memory each task asks for (CONVLINT_RAY_MEMORY_MB overrides it)
RETRIES = 1  # how many times a pair whose worker died is submitted again


def memory_mb() -> int:
    raw = os.environ.get("CONVLINT_RAY_MEMORY_MB", "")
    return int(raw) if raw.isdigit() else MEMORY_MB


def require() -> None:
    """Raise the CL005 error (exit 2) naming the extra when Ray is not installed, without
    importing it: checked before any work."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        _import_ray()


def _import_ray():
    try:
        import ray
    except ImportError as e:
        raise ConvlintError(
            f"--executor ray needs Ray, which is not installed in this environment ({e})",
            rule="CL005",
            hint="install it with: pip install 'convlint[ray]'",
        ) from None
    return ray


def _connect(ray, address: str | None, jobs: int) -> bool:
    """Join the cluster at ``address``, or start a local one on 127.0.0.1 with ``jobs`` CPUs.
    True when this call started it (then the run shuts it down)."""
    if ray.is_initialized():
        return False
    # a cluster that is not there, or refuses this machine's token (RAY_AUTH_MODE=token)
    refused = (ConnectionError, RuntimeError, ValueError)
    refused += tuple(filter(None, [getattr(ray.exceptions, "AuthenticationError", None)]))
    quiet = {
        "include_dashboard": False,
        "log_to_driver": False,
        "configure_logging": True,
        "logging_level": logging.ERROR,
    }
    try:
        if address:
            ray.init(address=address, **quiet)
        else:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(
                address="local",
                num_cpus=max(1, jobs),
                _node_ip_address="127.0.0.1",
                object_store_memory=128 * 1024 * 1024,
                **quiet,
            )
    except refused as e:
        what = f"connect to the Ray cluster at {address}" if address else "start a local Ray"
        raise ConvlintError(
            f"cannot {what}: {e}",
            rule="CL001",
            hint="start one with `ray start --head` and pass its address (host:port; with "
            "token authentication, RAY_AUTH_MODE=token and the cluster's token), or leave out "
            "--ray-address for a local Ray",
        ) from None
    return True


def _worker_task(task: Callable, pair, opts) -> dict:
    """The body of a Ray task, in a fresh worker process: what a pool worker's initializer does
    (memory ceiling, test plugins), then the check."""
    from convlint.analyzers.subproc import limit_memory, worker_plugins

    limit_memory()
    worker_plugins()
    return task(pair, opts)


def run(
    todo: list, opts, task: Callable, done: Callable, crashed: Callable, address: str | None = None
) -> dict:
    ray = _import_ray()
    from ray import exceptions as rex

    # the worker or its node died: a native crash, Ray's memory monitor, a lost node
    dead = (rex.WorkerCrashedError, rex.NodeDiedError, rex.OutOfMemoryError)
    started = _connect(ray, address, opts.jobs)
    remote = ray.remote(max_calls=1, num_cpus=1, memory=memory_mb() * 1024 * 1024, max_retries=0)(
        _worker_task
    )
    out: dict = {}
    running: dict = {}
    tries: dict = {}
    try:

        def submit(item) -> None:
            i, pair, key = item
            env = getattr(pair, "runtime_env", None)
            ref = (remote.options(runtime_env=env) if env else remote).remote(task, pair, opts)
            running[ref] = item

        for item in todo:
            tries[item[0]] = 0
            submit(item)
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            ref = ready[0]
            i, pair, key = item = running.pop(ref)
            executor = {"name": "ray", "retries": tries[i]}
            try:
                d = ray.get(ref)
            except dead:
                if tries[i] < RETRIES:
                    tries[i] += 1
                    submit(item)
                    continue
                out[i] = dict(crashed(pair), executor=executor)
                continue
            out[i] = done(dict(d, executor=executor), key, pair)
    except KeyboardInterrupt:
        for ref in list(running):
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
    return out
