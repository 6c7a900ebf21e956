"""The language server's session state: a Session per workspace folder (its config, its settings),
the open documents, pairs and results.

Only the server's event loop mutates it. A document's static report belongs to one version of
its text; conversion results belong to a pair of model files (by absolute path) and are
re-anchored on the converter call of the current text each time diagnostics are published.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from convlint.analyzers.models.detect import EXTENSIONS

MODEL_SUFFIXES = tuple(EXTENSIONS)  # the format detector owns the list
MODEL_GLOB = "**/*.{" + ",".join(e.lstrip(".") for e in EXTENSIONS) + "}"
CONFIG_NAMES = ("pyproject.toml", "convlint.toml")


@dataclass
class DocState:
    uri: str
    path: str
    version: int | None = None
    report: object | None = None  # the ScriptReport of the last static run (policy applied)
    calls: list = field(default_factory=list)  # converter_calls of that run
    lines: list = field(default_factory=list)  # the text the static run saw
    text_hash: str = ""
    running: bool = False  # a static run is scheduled and has not finished
    trace: object | None = None  # the last trace ScriptReport, valid while text_hash is unchanged
    trace_hash: str = ""
    # the last train-check ScriptReport, valid while text_hash is unchanged
    training: object | None = None
    training_hash: str = ""
    diags: list = field(default_factory=list)  # (Diagnostic, Finding, origin) as published


@dataclass
class Session:
    """One workspace folder: the config found from it (``pyproject.toml``/``convlint.toml``) and
    its settings (the editor's settings, overridden by that folder's own, ``folders`` in the
    options). A document is checked with the session of the folder that holds it."""
    root: str | None
    settings: object  # settings.Settings
    config: object | None = None  # the folder's Config
    config_error: str | None = None

    def holds(self, path: str) -> bool:
        return self.root is not None and (
            path == self.root or path.startswith(self.root.rstrip(os.sep) + os.sep)
        )


def session_for(sessions: list[Session], path: str) -> Session | None:
    """The session of the innermost folder that holds ``path`` (the first session otherwise)."""
    held = [s for s in sessions if s.holds(path)]
    if held:
        return max(held, key=lambda s: len(s.root or ""))
    return sessions[0] if sessions else None


@dataclass(frozen=True)
class ScriptPair:
    """A conversion a script makes, with both model files on disk."""
    index: int  # the converter call's position among the script's calls
    converter: str
    source: str
    target: str


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def resolve(p: str | None, script: str, root: str | None) -> str | None:
    """A path a script names, as the script would see it run from the workspace root or from
    its own folder; None when it names no file that exists."""
    if not p or "<" in p:
        return None
    cands = [Path(p)] if os.path.isabs(p) else [
        *([Path(root) / p] if root else []), Path(script).parent / p]
    for c in cands:
        if c.exists():
            return str(c.resolve())
    return None


def script_pairs(doc: DocState, root: str | None) -> list[ScriptPair]:
    out = []
    for i, c in enumerate(doc.calls):
        s, t = resolve(c.get("source"), doc.path, root), resolve(c.get("output"), doc.path, root)
        if s and t:
            out.append(ScriptPair(i, c.get("converter") or "", s, t))
    return out


def config_pairs(cfg, root: str | None) -> list:
    """The config's pairs with absolute paths (relative ones are relative to the config file)."""
    if cfg is None or not cfg.pairs:
        return []
    base = Path(cfg.path).parent if cfg.path else Path(root or ".")
    out = []
    for p in cfg.pairs:
        s = Path(p.source) if os.path.isabs(p.source) else base / p.source
        t = Path(p.target) if os.path.isabs(p.target) else base / p.target
        out.append((p, str(s.resolve()), str(t.resolve())))
    return out


def line_of(text: str, needle: str) -> int:
    """The 1-based line where ``needle`` first appears (1 when it does not)."""
    i = text.find(needle)
    return text.count("\n", 0, i) + 1 if i >= 0 else 1
