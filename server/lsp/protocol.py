"""The line protocol between the language server's job runner (``jobs.py``) and its worker
process (``worker.py``): one JSON document per line, in each direction.

In (the worker's stdin): a :class:`JobMessage`, one job at a time.
Out (the worker's original stdout, kept private: anything the frameworks print goes to stderr):
``ready`` once, first; then for each job any number of ``progress`` events and exactly one of
``result`` (the report) or ``failed`` (a message and the rule code it was classified with:
CL009 for a convlint bug, the ConvlintError's own rule for a user's problem).
"""

from __future__ import annotations

import json
from typing import Literal, TypedDict

Event = Literal["ready", "progress", "result", "failed"]
MODULE = "convlint.server.lsp.worker"  # what `python -m` runs


class JobMessage(TypedDict):
    id: str
    kind: str
    params: dict


class EventMessage(TypedDict, total=False):
    event: Event
    id: str | None
    pid: int
    message: str
    report: dict
    rule: str


def job(jid: str, kind: str, params: dict) -> JobMessage:
    return {"id": jid, "kind": kind, "params": params}


def ready(pid: int) -> EventMessage:
    return {"event": "ready", "pid": pid}


def progress(jid: str, message: str) -> EventMessage:
    return {"id": jid, "event": "progress", "message": message}


def result(jid: str, report: dict) -> EventMessage:
    return {"id": jid, "event": "result", "report": report}


def failed(jid: str | None, message: str, rule: str) -> EventMessage:
    return {"id": jid, "event": "failed", "message": message, "rule": rule}


def encode(msg: JobMessage | EventMessage) -> str:
    return json.dumps(msg) + "\n"


def decode(line: str | bytes) -> dict:
    """One message, or {} for a line that is not one (a stray print cannot break the runner)."""
    try:
        msg = json.loads(line)
    except ValueError:
        return {}
    return msg if isinstance(msg, dict) else {}
