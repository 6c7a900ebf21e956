"""The language server's settings: what the editor sends, merged with the project's config.

In: a dict from ``initializationOptions`` or ``workspace/didChangeConfiguration`` (keys as in
the VS Code extension's ``convlint.*`` settings, with or without a ``convlint`` wrapper), and
the project's ``[tool.convlint]`` table. Out: ``Settings`` and the ``Config`` the policy step
uses. Precedence (docs/server.md): editor settings win for severity overrides and tolerances;
``select``, ``ignore``, ``exclude`` and ``pairs`` come from the project config; the project's
``allow-exec`` is never read by the server, because only the editor knows whether the
workspace is trusted.

The check options among the settings take the use-case requests' defaults and validation
(``analyzers/app/requests.py``), and the server builds its jobs' requests here (``diff_request``,
``trace_request``, ``train_request``): nothing in the server restates a default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from convlint.analyzers import defaults as D
from convlint.analyzers.app.requests import DiffRequest, TraceRequest, TrainRequest
from convlint.analyzers.errors import ConvlintError

SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Settings:
    enable: bool = True
    run: str = "onType"  # static rules on every change (onType) or on save only (onSave)
    heavy_checks: bool = True  # conversion checks of the script's pairs (on save, on demand)
    trusted: bool = False  # the editor says the workspace is trusted: heavy checks may run
    trace_on_save: bool = False  # also run the instrumented trace of a script on save
    severity: dict = field(default_factory=dict)  # rule code -> error|warning|info
    atol: float = DiffRequest.atol
    rtol: float = DiffRequest.rtol
    tvm: bool = DiffRequest.use_tvm  # cross-check through TVM (slower, finds frontend faults)
    timeout: float = D.JOB_TIMEOUT  # seconds before a background job counts as hung
    debounce_ms: int = 0  # extra delay before static rules run after a change
    python: str | None = None  # the interpreter that runs traced scripts
    watch_files: bool = True  # register file watchers; false when the client forwards its own

    @property
    def heavy_allowed(self) -> bool:
        return self.enable and self.heavy_checks and self.trusted

    @property
    def script_timeout(self) -> float:
        """A traced or training script's time: the job's, within the server's ceiling."""
        return min(self.timeout, D.MAX_SERVER_TIMEOUT)

    def diff_request(self, source: str, target: str, pair=None, **kw) -> DiffRequest:
        """The pair check's request: these settings, then ``pair``'s (a ``config.Pair``) own
        tolerances and inputs when it is given."""
        req = DiffRequest(source, target, atol=self.atol, rtol=self.rtol, use_tvm=self.tvm, **kw)
        return req if pair is None else req.for_pair(pair)

    def trace_request(self, script: str, cwd: str) -> TraceRequest:
        return TraceRequest(script, cwd=cwd, atol=self.atol, rtol=self.rtol, use_tvm=self.tvm,
                            python=self.python, timeout=self.script_timeout)

    def train_request(self, script: str, cwd: str) -> TrainRequest:
        return TrainRequest(script, cwd=cwd, python=self.python, timeout=self.script_timeout)


KEYS = {"enable": ("enable", bool), "run": ("run", str), "heavyChecks": ("heavy_checks", bool),
        "trustedExecution": ("trusted", bool), "traceOnSave": ("trace_on_save", bool),
        "severity": ("severity", dict), "atol": ("atol", float), "rtol": ("rtol", float),
        "tvm": ("tvm", bool), "timeout": ("timeout", float), "debounce": ("debounce_ms", int),
        "interpreter": ("python", str), "watchFiles": ("watch_files", bool)}


def parse(options, base: Settings | None = None) -> tuple[Settings, list[str]]:
    """Settings from the editor's options; unknown keys and bad values are reported (as
    messages for the client's log), never fatal."""
    s = base or Settings()
    problems: list[str] = []
    if not isinstance(options, dict):
        return s, (
            [] if options is None else [f"settings must be an object, not {type(options).__name__}"]
        )
    if isinstance(options.get("convlint"), dict):
        options = options["convlint"]
    changes = {}
    for k, v in options.items():
        if k not in KEYS:
            problems.append(f"unknown setting convlint.{k} (ignored)")
            continue
        name, typ = KEYS[k]
        if v is None:
            continue
        if typ is float and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = float(v)
        if typ is int and isinstance(v, (int, float)) and not isinstance(v, bool):
            v = int(v)
        if not isinstance(v, typ) or isinstance(v, bool) and typ is not bool:
            problems.append(
                f"convlint.{k} must be {typ.__name__}, not {type(v).__name__} (ignored)"
            )
            continue
        if name == "run" and v not in ("onType", "onSave"):
            problems.append(f"convlint.run must be onType or onSave, not {v!r} (ignored)")
            continue
        if name == "severity":
            bad = {c: sv for c, sv in v.items() if sv not in SEVERITIES}
            if bad:
                problems.append(
                    f"convlint.severity: {bad} must be one of {', '.join(SEVERITIES)} (ignored)"
                )
            v = {str(c).upper(): sv for c, sv in v.items() if sv in SEVERITIES}
        if name in ("atol", "rtol", "timeout"):  # judged by the request, as the CLI's values
            try:
                v = (TraceRequest if name == "timeout" else DiffRequest).validate(name, v)
            except ConvlintError as e:
                problems.append(f"convlint.{k}{e.message[len(name):]} (ignored)")
                continue
        changes[name] = v
    return replace(s, **changes), problems


def effective_config(cfg, settings: Settings):
    """The project's Config with the editor's severity overrides on top."""
    if not settings.severity:
        return cfg
    return replace(cfg, severity={**cfg.severity, **settings.severity})
