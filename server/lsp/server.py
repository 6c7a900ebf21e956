"""``convlint serve``: the language server (pygls 2). It only translates and schedules.

- Static script rules run in this process on open and on change (fast: no framework import).
  A run is scheduled once per burst of changes and reads the newest text when it starts; it
  runs synchronously in the event loop, so no change can land while it runs.
- Heavy checks (the conversion check of a script's pairs, the instrumented trace, repairs) run
  in the worker process (``jobs.JobRunner``), only when enabled and the workspace is trusted,
  cached on disk by the models' content hash, with work-done progress per stage.
- Findings become diagnostics and code actions in ``adapter``.
The routing table is at the bottom of this module (``build``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
import uuid
from dataclasses import asdict
from pathlib import Path

from lsprotocol import types as T
from pygls.exceptions import JsonRpcException
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol
from pygls.uris import to_fs_path

from convlint import __version__
from convlint.server.lsp import adapter, commands
from convlint.server.lsp import settings as S
from convlint.server.lsp.jobs import JobFailed, JobRunner, WorkerCrashed
from convlint.server.lsp.session import (
    DocState,
    Session,
    config_pairs,
    line_of,
    script_pairs,
    session_for,
    text_hash,
)

log = logging.getLogger("convlint.server")


class _Ignored:
    jsonrpc = "ignored"  # handle_message drops messages of another JSON-RPC version


class ConvlintProtocol(LanguageServerProtocol):
    """Two gaps of pygls 2 closed here, by overriding its public methods only (docs/server.md).
    - ``structure_message``: a request whose params do not deserialize gets no answer; the client
      would wait forever. Answer it with InvalidParams.
    - ``handle_message``: ``$/cancelRequest`` for ``workspace/executeCommand`` only answers
      "cancelled" (pygls runs that method as a generator, whose future is not the command's task):
      the command's own task runs on. Cancel the task too (commands register it, ``track``)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.request_tasks: dict = {}

    def track(self) -> None:
        """Called from an async request handler: cancelling the request cancels this task."""
        msg_id = self.msg_id
        task = asyncio.current_task()
        if msg_id is not None and task is not None:
            self.request_tasks[msg_id] = task
            task.add_done_callback(lambda _t, m=msg_id: self.request_tasks.pop(m, None))

    def handle_message(self, message):
        if getattr(message, "method", None) == T.CANCEL_REQUEST and message.params is not None:
            task = self.request_tasks.pop(message.params.id, None)
            super().handle_message(message)
            if task is not None:
                task.cancel()
            return
        super().handle_message(message)

    def cancel_request(self, msg_id) -> None:
        """Cancel a request as the client's ``$/cancelRequest`` would (one response:
        "cancelled")."""
        self.handle_message(T.CancelNotification(params=T.CancelParams(id=msg_id)))

    def structure_message(self, data):
        try:
            return super().structure_message(data)
        except JsonRpcException as e:
            if isinstance(data, dict) and "id" in data and "method" in data:
                # pygls 2 has no public "send a response" method: _send_response is what its own
                # handlers use (called, not patched)
                self._send_response(data["id"], error=e.to_response_error())
                return _Ignored()
            raise


class ConvlintServer(LanguageServer):
    def __init__(self):
        from convlint.server.lsp import notebooks

        super().__init__("convlint", __version__, protocol_cls=ConvlintProtocol, max_workers=2,
                         notebook_document_sync=notebooks.SYNC)
        self.settings = S.Settings()
        self.jobs = JobRunner()
        self.docs: dict[str, DocState] = {}
        self.cells: dict[str, DocState] = {}  # notebook cells by cell URI (notebooks.py)
        self.notebook_pairs: dict[str, list] = {}  # notebook URI -> its (source, target) pairs
        self.notebook_traces: dict[str, tuple] = {}  # notebook URI -> (code hash, trace report)
        self.notebook_converting: set[str] = set()  # notebooks with a converter call
        self.sessions: list[Session] = []  # one per workspace folder
        # a folder's own settings (the client's "folders")
        self.folder_options: dict[str, dict] = {}
        self.results: dict[tuple, object] = {}  # (source, target) -> ConversionReport
        self.progress_tasks: dict[str, asyncio.Task] = {}
        self.tasks: set[asyncio.Task] = set()

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def root(self) -> str | None:
        try:
            return self.workspace.root_path
        except Exception:
            return None

    def spawn(self, coro) -> asyncio.Task:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)
        return t

    def log(self, msg: str, kind=T.MessageType.Log) -> None:
        self.window_log_message(T.LogMessageParams(kind, msg))

    def folders(self) -> list[str]:
        """The workspace folders' paths (the root path for a client that sends no folders)."""
        try:
            paths = [to_fs_path(f.uri) for f in self.workspace.folders.values()]
        except Exception:
            paths = []
        out = [str(Path(p).resolve()) for p in paths if p]
        return out or ([str(Path(self.root).resolve())] if self.root else [])

    @property
    def config(self):
        """The first folder's Config (the status, the workspace-wide commands)."""
        return self.sessions[0].config if self.sessions else None

    def session(self, path: str) -> Session:
        return session_for(self.sessions, path) or Session(self.root, self.settings)

    def set_folder_options(self, options) -> list[str]:
        """Take the client's per-folder settings (``folders``: path or URI -> settings) out of its
        options; the problems found in them."""
        self.folder_options = {}
        if not isinstance(options, dict):
            return []
        folders = (
            options.get("convlint") if isinstance(options.get("convlint"), dict) else options
        ).pop("folders", None)
        if not isinstance(folders, dict):
            return [] if folders is None else ["convlint.folders must be an object (ignored)"]
        for k, v in folders.items():
            path = to_fs_path(k) if "://" in k else k
            if path and isinstance(v, dict):
                self.folder_options[str(Path(path).resolve())] = v
        return []

    def apply_settings(self) -> list[str]:
        """Each session's settings: the editor's, overridden by its folder's own."""
        problems = []
        for sess in self.sessions:
            sess.settings, ps = S.parse(
                dict(self.folder_options.get(sess.root or "", {})), self.settings
            )
            problems += [f"{sess.root}: {p}" for p in ps]
        return problems

    def load_config(self) -> None:
        self.sessions = [self._new_session(root) for root in self.folders() or [None]]
        for p in self.apply_settings():
            self.log(f"convlint: {p}", T.MessageType.Warning)

    def _new_session(self, root: str | None) -> Session:
        """A folder's Session with the config found from it (an unreadable config is shown once
        and replaced by the defaults)."""
        from convlint.analyzers import config as C
        from convlint.analyzers.errors import ConvlintError

        sess = Session(root, self.settings)
        path = C.find_config(root) if root else None
        try:
            sess.config = C.load(path)
        except ConvlintError as e:
            sess.config, sess.config_error = C.Config(path=str(path)), e.message
            self.window_show_message(
                T.ShowMessageParams(T.MessageType.Error, f"convlint: {e.message}"))
        return sess

    def update_folders(self) -> tuple[list, list]:
        """After ``workspace/didChangeWorkspaceFolders`` (pygls has updated ``workspace.folders``):
        an added folder gets its Session (its config, its folder settings), a removed one loses
        it; the other folders keep theirs. Out: (added roots, removed roots)."""
        kept = {s.root: s for s in self.sessions}
        roots = self.folders() or [None]
        self.sessions = [kept.get(r) or self._new_session(r) for r in roots]
        for p in self.apply_settings():
            self.log(f"convlint: {p}", T.MessageType.Warning)
        return [r for r in roots if r not in kept], [r for r in kept if r not in roots]

    def effective_config(self, sess: Session | None = None):
        from convlint.analyzers.config import Config

        sess = sess or (self.sessions[0] if self.sessions else Session(self.root, self.settings))
        return S.effective_config(sess.config or Config(), sess.settings)

    def excluded(self, path: str) -> bool:
        from convlint.analyzers.config import excluded

        cfg = self.session(path).config
        return excluded(path, cfg.exclude if cfg else ())

    # -- static rules ----------------------------------------------------------------------------
    def doc_state(self, uri: str) -> DocState:
        st = self.docs.get(uri)
        if st is None:
            st = self.docs[uri] = DocState(uri, to_fs_path(uri) or uri)
        return st

    def schedule_static(self, uri: str) -> None:
        st = self.doc_state(uri)
        if st.running:
            return  # the scheduled run has not started yet: it will read this newer text
        st.running = True
        self.spawn(self._static_run(st))

    async def _static_run(self, st: DocState) -> None:
        try:
            if self.settings.debounce_ms:
                await asyncio.sleep(self.settings.debounce_ms / 1000)
            self._static_once(st)
        finally:
            st.running = False

    def _static_once(self, st: DocState) -> None:
        from convlint.analyzers.report import policy
        from convlint.analyzers.scripts import reparse
        from convlint.analyzers.scripts.check import analyze_source

        # an edited script is parsed again only where the edit touched it (no-op once set)
        reparse.keep(64)

        doc = self.workspace.get_text_document(st.uri)
        if doc is None:
            return
        version, text = doc.version, doc.source
        sess = self.session(st.path)
        if not sess.settings.enable or self.excluded(st.path):
            st.report, st.calls = None, []
        else:
            with gc_paused():
                report = analyze_source(text, st.path)
            st.report = policy.apply(report, self.effective_config(sess))
            st.calls = report.extra.get("converter_calls", [])
        st.version, st.lines = version, list(doc.lines)
        h = text_hash(text)
        if st.trace is not None and st.trace_hash != h:
            st.trace = None  # trace findings belong to the text that was traced
        if st.training is not None and st.training_hash != h:
            st.training = None
        st.text_hash = h
        self.publish(st)

    # -- publishing -------------------------------------------------------------------------------
    def publish(self, st: DocState) -> None:
        doc = self.workspace.get_text_document(st.uri)
        codec = doc.position_codec if doc is not None else None
        lines = st.lines
        sess = self.session(st.path)
        out = []
        if st.report is not None and sess.settings.enable:
            conversions = []
            for pair in script_pairs(st, sess.root):
                rep = self.results.get((pair.source, pair.target))
                if rep is not None:
                    c = st.calls[pair.index]
                    rng = adapter.to_range(codec, lines, adapter.line_range(
                        lines, c["line"], c["column"], c.get("end_line"), c.get("end_column")))
                    conversions.append((self._policy(rep, sess), rng))
            out = adapter.document_diagnostics(lines, codec, st.path, static=st.report.findings,
                                               conversions=conversions, trace=st.trace,
                                               training=st.training)
        st.diags = out
        self.text_document_publish_diagnostics(T.PublishDiagnosticsParams(
            st.uri, [d for d, _, _ in out], version=st.version))

    def _policy(self, report, sess: Session | None = None):
        from convlint.analyzers.report import policy

        return policy.apply(report, self.effective_config(sess))

    def publish_config(self) -> None:
        """Each folder's config errors and config pairs' findings, on its config file."""
        for sess in self.sessions:
            self._publish_config(sess)

    def _publish_config(self, sess: Session) -> None:
        cfg = sess.config
        if cfg is None or not cfg.path:
            return
        uri = adapter.uri_of(cfg.path)
        try:
            text = Path(cfg.path).read_text(encoding="utf-8")
        except OSError:
            return
        lines = text.splitlines(True) or [""]
        out = []
        if sess.config_error:
            from convlint.analyzers import rules as R
            from convlint.analyzers.report.findings import Finding

            f = Finding(R.BAD_ARGUMENTS.code, "error", "input", sess.config_error)
            out.append(
                adapter.diagnostic(f, adapter.to_range(None, lines, adapter.line_range(lines, 1)))
            )
        for pair, s, t in config_pairs(cfg, sess.root):
            rep = self.results.get((s, t))
            if rep is not None:
                rel = os.path.relpath(t, Path(cfg.path).parent)
                ln = next(
                    (line_of(text, n) for n in (pair.target, rel, Path(t).name) if n in text), 1
                )
                rng = adapter.to_range(None, lines, adapter.line_range(lines, ln))
                out += [d for d, _ in adapter.conversion_diagnostics(self._policy(rep, sess), rng)]
        self.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri, out))

    # -- heavy checks ----------------------------------------------------------------------------
    async def progress_begin(self, title: str) -> str | None:
        caps = self.client_capabilities.window
        if not (caps and caps.work_done_progress):
            return None
        token = f"convlint-{uuid.uuid4().hex[:12]}"
        try:
            await asyncio.wait_for(self.work_done_progress.create_async(token), 10)
        except Exception:
            return None
        self.work_done_progress.begin(token, T.WorkDoneProgressBegin(title=title, cancellable=True,
                                                                    message="queued"))
        return token

    def progress_report(self, token: str | None, message: str) -> None:
        if token:
            self.work_done_progress.report(token, T.WorkDoneProgressReport(message=message[:200]))

    def progress_end(self, token: str | None, message: str) -> None:
        if token:
            self.progress_tasks.pop(token, None)
            self.work_done_progress.end(token, T.WorkDoneProgressEnd(message=message[:200]))

    def notify_status(self, state: str, title: str, **extra) -> None:
        """``convlint/status``: what the background jobs are doing, for a client's status item
        (``{state: checking|idle, title, stage}`` while a job runs, ``{state: idle, title,
        result, findings}`` when it ends). Clients that do not know it ignore it."""
        try:
            self.protocol.notify("convlint/status", {"state": state, "title": title,
                                                     "running": self.jobs.busy(), **extra})
        except Exception:  # a closed transport: nothing to tell
            pass

    async def run_job(self, kind: str, params: dict, title: str, key: str | None = None) -> dict:
        """Run one job in the worker with progress; a crash or failure becomes a report."""
        token = await self.progress_begin(title)
        if token:
            self.progress_tasks[token] = asyncio.current_task()
        end, nfind = "cancelled", None
        self.notify_status("checking", title, stage="queued")

        def report(m: str) -> None:
            self.progress_report(token, m)
            self.notify_status("checking", title, stage=m[:200])

        try:
            rep = await self.jobs.submit(kind, params, key, report)
            end = rep.get("verdict", "done") if isinstance(rep, dict) else "done"
            nfind = len(rep.get("findings", [])) if isinstance(rep, dict) else None
            return rep
        except WorkerCrashed as e:
            end = "worker crashed"
            self.window_show_message(T.ShowMessageParams(
                T.MessageType.Warning, f"convlint: {e} during '{title}'; the worker was replaced"))
            return commands.crash_report(kind, params, e)
        except JobFailed as e:
            end = "failed"
            return commands.failed_report(kind, params, str(e), e.rule)
        finally:
            self.progress_end(token, end)
            self.notify_status("idle", title, result=end, findings=nfind)

    async def check_pair(self, source: str, target: str, *, force: bool = False, pair=None) -> dict:
        """``pair``: the config's Pair, whose own tolerances and inputs win when given."""
        from dataclasses import replace as _replace

        from convlint.analyzers import project
        from convlint.analyzers.config import Pair

        sess = self.session(target)  # the folder that holds the converted model
        pair = (
            _replace(pair, source=source, target=target)
            if pair is not None
            else Pair(source, target)
        )
        req = sess.settings.diff_request(source, target, pair)
        key = await asyncio.to_thread(project.request_cache_key, req, pair)
        cdir = project.check_cache_dir(sess.config)
        hit = None if force else project.cache_read(cdir, key)
        if hit is not None:
            rep = hit
        else:
            rep = await self.run_job("check-pair", req.to_dict(),
                                     f"convlint: {Path(source).name} -> {Path(target).name}", key)
            if not commands.is_worker_crash(rep):
                project.cache_write(cdir, key, rep)
        from convlint.analyzers.report.findings import ConversionReport

        self.results[(source, target)] = ConversionReport.from_dict(rep)
        self.republish_pair(source, target)
        return rep

    def republish_pair(self, source: str, target: str) -> None:
        from convlint.server.lsp import notebooks

        for st in self.docs.values():
            if any(
                (p.source, p.target) == (source, target)
                for p in script_pairs(st, self.session(st.path).root)
            ):
                self.publish(st)
        for uri, pairs in list(self.notebook_pairs.items()):
            if (source, target) in pairs:
                notebooks.check(self, uri)
        for sess in self.sessions:
            if any((s, t) == (source, target) for _, s, t in config_pairs(sess.config, sess.root)):
                self._publish_config(sess)

    async def check_document(self, uri: str) -> list:
        st = self.doc_state(uri)
        reports = []
        for p in script_pairs(st, self.session(st.path).root):
            reports.append(await self.check_pair(p.source, p.target))
        return reports

    async def trace_document(self, uri: str) -> dict:
        from convlint.analyzers.report.findings import ScriptReport

        st = self.doc_state(uri)
        h = st.text_hash
        cwd = self.session(st.path).root or str(Path(st.path).parent)
        params = self.settings.trace_request(st.path, cwd).to_dict()
        rep = await self.run_job("trace", params, f"convlint: tracing {Path(st.path).name}",
                                 key=f"trace:{st.path}:{h}")
        if st.text_hash == h:
            st.trace, st.trace_hash = ScriptReport.from_dict(rep), h
            self.publish(st)
        return rep

    async def train_document(self, uri: str) -> dict:
        """``convlint train-check`` of a script in the worker; its findings land on the lines that
        built the layers (and set the optimizer, the loss, the fit call)."""
        from convlint.analyzers.report.findings import ScriptReport

        st = self.doc_state(uri)
        h = st.text_hash
        cwd = self.session(st.path).root or str(Path(st.path).parent)
        params = self.settings.train_request(st.path, cwd).to_dict()
        rep = await self.run_job(
            "train-check",
            params,
            f"convlint: checking training of {Path(st.path).name}",
            key=f"train:{st.path}:{h}",
        )
        if st.text_hash == h and rep.get("kind") == "training":
            st.training, st.training_hash = ScriptReport.from_dict(rep), h
            self.publish(st)
        return rep

    def on_models_changed(self, paths: set[str]) -> None:
        """Re-check every pair one of the changed model files belongs to."""
        if not self.settings.heavy_allowed:
            return
        for s, t, cp in self.all_pairs():
            if s in paths or t in paths or any(s.startswith(x + os.sep) for x in paths):
                self.spawn(self.check_pair(s, t, pair=cp))

    def all_pairs(self) -> list:
        """(source, target, config Pair or None) for the open scripts and the project config."""
        out = {
            (s, t): cp
            for sess in self.sessions
            for cp, s, t in config_pairs(sess.config, sess.root)
        }
        for st in self.docs.values():
            for p in script_pairs(st, self.session(st.path).root):
                out.setdefault((p.source, p.target), None)
        for pairs in self.notebook_pairs.values():
            for pair in pairs:
                out.setdefault(pair, None)
        return [(s, t, cp) for (s, t), cp in sorted(out.items())]

    def status(self) -> dict:
        return {
            "version": __version__,
            "server_pid": os.getpid(),
            "worker_pid": self.jobs.pid,
            "busy": self.jobs.busy(),
            "worker_crashes": self.jobs.crashes,
            "jobs_started": self.jobs.started,
            "settings": asdict(self.settings),
            "config": self.config.path if self.config else None,
            "documents": len(self.docs),
            "time": time.time(),
        }


@contextlib.contextmanager
def gc_paused():
    """No cyclic garbage collection while the static rules run: a script's AST is ~100,000
    short-lived
    objects without cycles (freed by reference counting when the run ends), and the collections
    their
    allocation would trigger walk the server's whole heap for nothing (a third of a run's time)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def build() -> ConvlintServer:
    """The server with its routing table (``handlers.ROUTES``): one handler per LSP method."""
    from convlint.server.lsp import handlers

    ls = ConvlintServer()
    handlers.register(ls)
    return ls


def serve(tcp: str | None = None) -> int:
    logging.basicConfig(
        level=os.environ.get("CONVLINT_LOG", "WARNING"),
        format="%(levelname)s %(name)s: %(message)s",
    )
    ls = build()
    # what start-up made (lsprotocol's classes, the routing table) is out of the collector's way
    gc.freeze()
    gc.enable()  # (serve_main disabled it for the start-up)
    if tcp:
        from convlint.analyzers.errors import ConvlintError

        host, _, port = tcp.rpartition(":")  # validated by the CLI: HOST:PORT
        try:
            ls.start_tcp(host, int(port))
        except OSError as e:
            raise ConvlintError(f"cannot listen on {tcp}: {e.strerror or e}",
                                hint="choose another port, or stop what listens there") from None
    else:
        ls.start_io()
    return 0

