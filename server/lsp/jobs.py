"""Background jobs for the language server: one worker process, a queue, de-duplication,
cancellation, crash and hang isolation.

In: ``submit(kind, params, key, on_progress)`` from the server's event loop. Out: the job's
report (a dict), or ``WorkerCrashed`` when the worker died or hung while running it (the
worker is then replaced on the next job), or ``JobFailed`` when the job itself failed, or
``asyncio.CancelledError`` when every caller waiting for it was cancelled (a running job is
stopped by stopping the worker: native code cannot be interrupted any other way. SIGTERM first,
so it removes its temporary files and the scripts it runs; SIGKILL to its process group after a
grace period).

Jobs with the same ``key`` share one run. The worker is ``python -m convlint.server.lsp.worker``;
``protocol.py`` holds the line protocol and its message types, shared by both ends.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from convlint.analyzers import defaults as D
from convlint.server.lsp import protocol as P

log = logging.getLogger(__name__)


class JobFailed(Exception):
    """The job ran and failed (a user error or an analyzer error); the worker is fine.
    ``rule`` is the rule code the worker classified the failure with (CL009 for a bug)."""

    def __init__(self, message: str, rule: str | None = None):
        super().__init__(message)
        self.rule = rule


class WorkerCrashed(Exception):
    """The worker died or hung while running the job; ``step`` is its last progress message."""

    def __init__(self, message: str, step: str | None):
        super().__init__(message)
        self.step = step


@dataclass
class Job:
    id: str
    kind: str
    params: dict
    key: str | None
    future: asyncio.Future
    listeners: list = field(default_factory=list)
    waiters: int = 0
    state: str = "queued"  # queued | running | done
    last_step: str | None = None
    cancelled: bool = False


class Worker:
    """The worker process and its line protocol."""

    def __init__(self, proc: asyncio.subprocess.Process):
        self.proc = proc

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    def kill(self) -> None:
        """SIGKILL the worker and everything it started (its process group: it leads a session)."""
        self._signal_group(signal.SIGKILL)

    def stop(self, grace: float = 3.0) -> None:
        """A cancel: SIGTERM to the group, so the worker removes its temporary and half-written
        files and the script it runs ends; SIGKILL after ``grace`` seconds for what is left."""
        if not self.alive:
            return
        self._signal_group(signal.SIGTERM)
        asyncio.get_running_loop().call_later(grace, self._signal_group, signal.SIGKILL)

    def _signal_group(self, sig) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            if self.alive:
                try:
                    self.proc.send_signal(sig)
                except ProcessLookupError:
                    pass


class JobRunner:
    def __init__(self, python: str | None = None, timeout: float = D.JOB_TIMEOUT,
                 env: dict | None = None):
        self.python = python or sys.executable
        self.timeout = timeout
        self.env = env
        self.worker: Worker | None = None
        self.queue: collections.deque[Job] = collections.deque()
        self.active: dict[str, Job] = {}  # key -> job, for de-duplication
        self.current: Job | None = None
        self.crashes = 0
        self.started = 0  # jobs sent to a worker (de-duplicated jobs count once)
        self._ids = itertools.count(1)
        self._loop_task: asyncio.Task | None = None

    # -- public ---------------------------------------------------------------------------------
    async def submit(self, kind: str, params: dict, key: str | None = None,
                     on_progress: Callable[[str], None] | None = None) -> dict:
        job = self.active.get(key) if key else None
        if job is None:
            job = Job(
                str(next(self._ids)), kind, params, key, asyncio.get_running_loop().create_future()
            )
            if key:
                self.active[key] = job
            self.queue.append(job)
            if self._loop_task is None or self._loop_task.done():
                self._loop_task = asyncio.create_task(self._drain())
        if on_progress is not None:
            job.listeners.append(on_progress)
        job.waiters += 1
        try:
            return await asyncio.shield(job.future)
        except asyncio.CancelledError:
            job.waiters -= 1
            if job.waiters <= 0 and not job.future.done():
                self._cancel(job)
            raise
        finally:
            if on_progress is not None and on_progress in job.listeners:
                job.listeners.remove(on_progress)

    def busy(self) -> bool:
        return self.current is not None or bool(self.queue)

    @property
    def pid(self) -> int | None:
        return self.worker.pid if self.worker and self.worker.alive else None

    async def start(self) -> int:
        """Start the worker now (it imports nothing heavy until its first job)."""
        return (await self._ensure()).pid

    async def shutdown(self) -> None:
        for job in list(self.queue):
            self._cancel(job)
        if self.current is not None:
            self._cancel(self.current)
        if self.worker is not None:
            self.worker.stop()  # a running job cleans up first (SIGTERM), then SIGKILL
            await self._retire(self.worker, grace=3.0)

    # -- internals ------------------------------------------------------------------------------
    def _cancel(self, job: Job) -> None:
        job.cancelled = True
        if job.key and self.active.get(job.key) is job:
            del self.active[job.key]  # a new request for the same work must not join a dying job
        if job.state == "queued":
            try:
                self.queue.remove(job)
            except ValueError:
                pass
            self._finish(job, cancelled=True)
        elif job.state == "running" and self.worker is not None:
            log.info("cancelling job %s (%s): stopping the worker", job.id, job.kind)
            self.worker.stop()  # _run sees the pipe close and finishes the job as cancelled

    def _finish(self, job: Job, result=None, exc: BaseException | None = None, cancelled=False):
        job.state = "done"
        if job.key and self.active.get(job.key) is job:
            del self.active[job.key]
        if job.future.done():
            return
        if cancelled:
            job.future.cancel()
        elif exc is not None:
            job.future.set_exception(exc)
        else:
            job.future.set_result(result)

    async def _ensure(self) -> Worker:
        if self.worker is not None and self.worker.alive:
            return self.worker
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        env["PYTHONUNBUFFERED"] = "1"
        proc = await asyncio.create_subprocess_exec(
            self.python, "-m", P.MODULE, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=None, env=env, limit=1 << 27,
            start_new_session=True)
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        if P.decode(line).get("event") != "ready":
            proc.kill()
            raise WorkerCrashed(f"the worker did not start ({line[:200]!r})", None)
        self.worker = Worker(proc)
        log.info("worker started: pid %s", proc.pid)
        return self.worker

    async def _drain(self) -> None:
        while self.queue:
            job = self.queue.popleft()
            if job.future.done():
                continue
            self.current = job
            try:
                await self._run(job)
            except Exception as e:  # never let the queue die
                log.exception("job %s failed in the runner", job.id)
                self._finish(job, exc=e)
            finally:
                self.current = None

    async def _run(self, job: Job) -> None:
        try:
            worker = await self._ensure()
        except (TimeoutError, OSError, WorkerCrashed) as e:
            self._finish(job, exc=WorkerCrashed(f"the worker could not start: {e}", None))
            return
        if job.future.done():  # cancelled while the worker was starting
            return
        job.state = "running"
        self.started += 1
        worker.proc.stdin.write(P.encode(P.job(job.id, job.kind, job.params)).encode())
        try:
            await worker.proc.stdin.drain()
        except (ConnectionError, BrokenPipeError):
            pass
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                line = await asyncio.wait_for(
                    worker.proc.stdout.readline(), max(deadline - loop.time(), 0.01)
                )
            except TimeoutError:
                worker.kill()
                await worker.proc.wait()
                self.crashes += 1
                self._finish(job, exc=WorkerCrashed(
                    f"the worker hung: no result after {self.timeout:g} s", job.last_step))
                return
            if not line:  # the worker died
                rc = await worker.proc.wait()
                if job.cancelled:
                    self._finish(job, cancelled=True)
                    return
                self.crashes += 1
                self._finish(
                    job, exc=WorkerCrashed(f"the worker crashed ({_status(rc)})", job.last_step)
                )
                return
            msg = P.decode(line)
            if msg.get("id") != job.id:
                continue
            ev = msg.get("event")
            if ev == "progress":
                job.last_step = msg.get("message")
                for fn in list(job.listeners):
                    try:
                        fn(job.last_step)
                    except Exception:
                        log.exception("progress listener failed")
            elif ev in ("result", "failed"):
                if job.cancelled:  # being stopped: never reuse it; wait for it to go
                    await self._retire(worker)
                    self._finish(job, cancelled=True)
                elif ev == "result":
                    self._finish(job, result=msg.get("report"))
                else:
                    self._finish(job, exc=JobFailed(msg.get("message") or "the job failed",
                                                    msg.get("rule")))
                return

    async def _retire(self, worker: Worker, grace: float = 5.0) -> None:
        """Wait for a stopped worker to exit (SIGKILL when it does not), so no job goes to it."""
        try:
            await asyncio.wait_for(worker.proc.wait(), grace)
        except TimeoutError:
            worker.kill()
            await worker.proc.wait()


def _status(rc: int | None) -> str:
    if rc is not None and rc < 0:
        try:
            return f"signal {signal.Signals(-rc).name}"
        except ValueError:
            return f"signal {-rc}"
    return f"exit status {rc}"
