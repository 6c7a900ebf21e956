"""The server's commands (``workspace/executeCommand``) and code actions.

Commands take one argument: a document URI (string) or an object. Each returns a JSON value.
- ``convlint.runCheck [uri]``: the conversion check of the script's pairs, now (needs trust).
- ``convlint.checkWorkspace []``: the config's pairs and every open script's pairs.
- ``convlint.trace [uri]``: ``convlint trace`` of the script in the worker (needs trust).
- ``convlint.checkPair [{source, target}]``: the conversion check of two model files.
- ``convlint.repair [uri | {source, target}]``: check with repair; writes new files only.
- ``convlint.showReport [uri]``: write the document's full report (text and JSON) to the cache
  and ask the editor to show it.
- ``convlint.status []``: version, worker pid, settings.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from lsprotocol import types as T
from pygls.exceptions import JsonRpcInvalidParams

from convlint.analyzers import rules as R
from convlint.server.lsp import adapter
from convlint.server.lsp.session import script_pairs

NOT_TRUSTED = (
    "convlint: heavy checks are off: they run only when convlint.heavyChecks is on and the "
    "workspace is trusted (convlint.trustedExecution)"
)


def _arg(args, kind=str):
    if not args:
        raise JsonRpcInvalidParams.of(ValueError("this command needs one argument"))
    a = args[0]
    if kind is str and isinstance(a, dict) and isinstance(a.get("uri"), str):
        a = a["uri"]
    if not isinstance(a, kind):
        raise JsonRpcInvalidParams.of(
            ValueError(f"expected a {kind.__name__} argument, not {type(a).__name__}")
        )
    return a


def _pair_arg(a: dict) -> tuple[str, str]:
    s, t = a.get("source"), a.get("target")
    if not isinstance(s, str) or not isinstance(t, str):
        raise JsonRpcInvalidParams.of(ValueError("expected {source: path, target: path}"))
    s, t = str(Path(s).resolve()), str(Path(t).resolve())
    for p in (s, t):
        if not Path(p).exists():
            raise JsonRpcInvalidParams.of(ValueError(f"{p}: no such model file"))
    return s, t


def is_worker_crash(rep: dict) -> bool:
    return any(f.get("rule") == R.WORKER_CRASHED.code for f in rep.get("findings") or [])


def _job_report(kind: str, params: dict, verdict: str, f) -> dict:
    """The report of a job that did not finish: a trace report for a trace, else a pair's."""
    from convlint.analyzers.report.findings import ConversionReport, ScriptReport

    if kind == "trace":
        return ScriptReport(params.get("script", ""), verdict, (f,), "trace").to_dict()
    return ConversionReport.unanalysed(
        params.get("source", ""), params.get("target", ""), verdict, f
    ).to_dict()


def crash_report(kind: str, params: dict, e) -> dict:
    """A worker that died or hung, as the report of the job it was running (CL014)."""
    from convlint.analyzers.report.findings import Finding

    what = (f"checking {params.get('source')} -> {params.get('target')}" if kind == "check-pair"
            else f"tracing {params.get('script')}" if kind == "trace" else f"running a {kind} job")
    msg = (
        f"{e} while {what}"
        + (f" (last step: {e.step})" if e.step else "")
        + "; the worker was replaced"
    )
    return _job_report(
        kind,
        params,
        "crash",
        Finding(R.WORKER_CRASHED.code, "error", "runtime", msg, evidence={"step": e.step}),
    )


def failed_report(kind: str, params: dict, message: str, rule_code: str | None = None) -> dict:
    """A job the worker reported as failed; ``rule_code`` is the worker's classification, kept as
    sent (the worker ships with the server: a code it did not send, or one convlint does not know,
    is a convlint bug, CL009)."""
    from convlint.analyzers.report.findings import Finding

    rule = R.get(rule_code) if rule_code in R.RULES else R.INTERNAL_ERROR
    return _job_report(kind, params, "error", Finding(rule.code, "error", rule.stage, message))


def _need_trust(ls) -> None:
    if not ls.settings.heavy_allowed:
        ls.window_show_message(T.ShowMessageParams(T.MessageType.Warning, NOT_TRUSTED))
        raise JsonRpcInvalidParams.of(PermissionError(NOT_TRUSTED))


def _script_command(ls, args):
    """The prologue of a heavy command on a script: cancellable, trusted, analysed."""
    ls.protocol.track()
    uri = _arg(args)
    _need_trust(ls)
    st = ls.doc_state(uri)
    if st.report is None:
        ls._static_once(st)
    return st


def document_report(ls, uri: str):
    """Everything known about a document: its static report, its pairs' conversion reports
    and the last trace, as one ``CheckReport`` (a ``check`` document of the contract)."""
    from convlint.analyzers.report.findings import CheckReport

    st = ls.docs.get(uri)
    if st is None or st.report is None:
        raise JsonRpcInvalidParams.of(
            ValueError(f"{uri}: not an open document convlint has analysed")
        )
    reports = [st.report]
    for p in script_pairs(st, ls.session(st.path).root):
        if (p.source, p.target) in ls.results:
            reports.append(ls.results[(p.source, p.target)])
    if st.trace is not None:
        reports.append(st.trace)
    if st.training is not None:
        reports.append(st.training)
    return CheckReport(tuple(reports), {"document": uri})


def register(ls) -> None:
    @ls.command("convlint.status")
    def status(ls, *args):
        return ls.status()

    if os.environ.get("CONVLINT_WORKER_PLUGINS"):
        @ls.command("convlint.testJob")
        async def test_job(ls, *args):
            """Run a job kind a worker plugin adds (the tests' abort and sleep), as a check would
            run: registered only when CONVLINT_WORKER_PLUGINS names one."""
            ls.protocol.track()
            a = _arg(args, dict)
            return await ls.run_job(
                str(a.get("kind")), dict(a.get("params") or {}), "convlint: test job"
            )

    @ls.command("convlint.runCheck")
    async def run_check(ls, *args):
        st = _script_command(ls, args)
        pairs = script_pairs(st, ls.session(st.path).root)
        if not pairs:
            return {
                "reports": [],
                "message": "the script names no conversion whose source and target "
                "files both exist; run convlint.trace to execute it instead",
            }
        return {"reports": [await ls.check_pair(p.source, p.target, force=True) for p in pairs]}

    @ls.command("convlint.checkWorkspace")
    async def check_workspace(ls, *args):
        """The project config's pairs and the pairs of every open script (needs trust)."""
        ls.protocol.track()
        _need_trust(ls)
        reports = []
        for s, t, cp in ls.all_pairs():
            reports.append(await ls.check_pair(s, t, pair=cp))
        return {"reports": reports}

    @ls.command("convlint.trace")
    async def trace(ls, *args):
        return await ls.trace_document(_script_command(ls, args).uri)

    @ls.command("convlint.trainCheck")
    async def train_check(ls, *args):
        """Run the script's training with probes (it executes the script; needs trust)."""
        return await ls.train_document(_script_command(ls, args).uri)

    @ls.command("convlint.checkPair")
    async def check_pair(ls, *args):
        ls.protocol.track()
        s, t = _pair_arg(_arg(args, dict))
        _need_trust(ls)
        return await ls.check_pair(s, t)

    @ls.command("convlint.repair")
    async def repair(ls, *args):
        ls.protocol.track()
        a = args[0] if args else None
        if isinstance(a, dict) and "source" in a:
            pairs = [_pair_arg(a)]
        else:
            st = ls.doc_state(_arg(args))
            pairs = [(p.source, p.target) for p in script_pairs(st, ls.session(st.path).root)]
        _need_trust(ls)
        out = []
        for s, t in pairs:
            params = ls.settings.diff_request(s, t, repair=True).to_dict()
            rep = await ls.run_job("check-pair", params, f"convlint: repairing {Path(t).name}")
            written = [
                f["repair"]
                for f in rep.get("findings", [])
                if f.get("repair") and f["repair"].get("output")
            ]
            if written:
                r = written[0]
                ls.window_show_message(
                    T.ShowMessageParams(
                        T.MessageType.Info,
                        f"convlint: wrote {r['output']}"
                        + (
                            " (verified: the check passes on it)"
                            if r.get("verified")
                            else " (not verified)"
                        ),
                    )
                )
            out.append(rep)
        return {"reports": out}

    @ls.command("convlint.showReport")
    async def show_report(ls, *args):
        from convlint.analyzers.cache import cache_dir
        from convlint.analyzers.report.io import write_new_file
        from convlint.analyzers.report.render import to_json, to_text

        uri = _arg(args)
        rep = document_report(ls, uri)
        d = cache_dir() / "reports"
        base = f"{Path(ls.docs[uri].path).stem}.{time.strftime('%Y%m%d-%H%M%S')}"
        stem, i = base, 1
        while (d / f"{stem}.json").exists():  # never over an earlier report
            stem, i = f"{base}-{i}", i + 1
        write_new_file(str(d / f"{stem}.json"), to_json(rep))
        txt = d / f"{stem}.txt"
        write_new_file(str(txt), to_text(rep, verbose=True) + "\n")
        try:
            await ls.window_show_document_async(T.ShowDocumentParams(txt.as_uri(), take_focus=True))
        except Exception as e:  # a client that cannot show documents still gets the paths
            logging.getLogger(__name__).debug("showDocument failed: %s", e)
        return {"path": str(txt), "json": str(d / f"{stem}.json"), "report": rep.to_dict()}


def code_actions(ls, params: T.CodeActionParams) -> list:
    uri = params.text_document.uri
    st = ls.docs.get(uri) or ls.cells.get(uri)  # a script, or a notebook's cell
    if st is None:
        return []
    doc = ls.workspace.get_text_document(uri)
    codec = doc.position_codec if doc is not None else None
    out = []
    only = params.context.only
    want_fix = not only or any(str(k).startswith("quickfix") for k in only)
    if want_fix:
        for d, f, origin in st.diags:
            if (
                origin == "static"
                and adapter.overlaps(d.range, params.range)
                and st.version == (doc.version if doc else None)
            ):
                out += adapter.quick_fixes(f, d, uri, st.version, st.lines, codec)
    if st.calls and (not only or any(str(k).startswith("source") for k in only) or want_fix):
        out.append(
            T.CodeAction(
                "convlint: run conversion check now",
                kind=T.CodeActionKind.Source,
                command=T.Command("Run conversion check", "convlint.runCheck", arguments=[uri]),
            )
        )
        if any(
            o == "conversion" and f.repair and f.repair.kind.startswith("patch")
            for _, f, o in st.diags
        ):
            out.append(
                T.CodeAction(
                    "convlint: repair model (writes a new file)",
                    kind=T.CodeActionKind.Source,
                    command=T.Command("Repair model", "convlint.repair", arguments=[uri]),
                )
            )
        out.append(
            T.CodeAction(
                "convlint: show report",
                kind=T.CodeActionKind.Source,
                command=T.Command("Show report", "convlint.showReport", arguments=[uri]),
            )
        )
    return out
