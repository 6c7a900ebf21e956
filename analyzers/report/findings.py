"""Findings and reports: immutable values, serializable to the JSON contract and back.

See ``../shared/contract.md``. Nothing here imports a framework.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, get_args

from convlint import __version__

# the contract's closed vocabularies, as types (checked by pyright) and as tuples (checked at run
# time)
Severity = Literal["error", "warning", "info"]
ConversionStage = Literal[
    "conversion-tool", "parameters", "hyperparameters", "graph", "input", "runtime"
]
TrainingStage = Literal["forward", "backward", "loss", "metric", "trend", "data"]
Stage = Literal[ConversionStage, TrainingStage]
RepairKind = Literal["patch-weights", "patch-attributes", "patch-graph", "rewrite-call",
                     "change-hyperparameter", "none"]
ConversionVerdict = Literal["equivalent", "divergent", "crash", "error"]
ScriptVerdict = Literal["clean", "issues", "faulty", "crash", "error"]  # a script check or trace
TrainingVerdict = Literal["healthy", "faulty", "crash", "error"]

SEVERITIES: tuple[str, ...] = get_args(Severity)
CONVERSION_STAGES: tuple[str, ...] = get_args(ConversionStage)
TRAINING_STAGES: tuple[str, ...] = get_args(TrainingStage)
REPAIR_KINDS: tuple[str, ...] = get_args(RepairKind)


@dataclass(frozen=True)
class Location:
    file: str | None = None
    line: int | None = None
    column: int | None = None
    source_node: str | None = None
    target_node: str | None = None
    end_line: int | None = None  # added field: the end of the range (editors need it)
    end_column: int | None = None
    # added fields, in a notebook only: ``line`` is the line of its code cells joined in order;
    # ``cell`` is the 0-based index in the file's ``cells`` (markdown included), ``cell_line``
    # the 1-based line in that cell (columns are the same), ``notebook_line`` the line of the
    # .ipynb file that stores it (what SARIF and GitHub annotations point at)
    cell: int | None = None
    cell_line: int | None = None
    cell_end_line: int | None = None
    notebook_line: int | None = None
    notebook_end_line: int | None = None

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if v is not None}
        if self.column is not None:  # added field: SARIF's and the text output's 1-based column
            d["column_1based"] = self.column + 1
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> Location:
        return cls(**{k: v for k, v in (d or {}).items() if k != "column_1based"})


@dataclass(frozen=True)
class Repair:
    kind: RepairKind
    description: str
    output: str | None = None
    verified: bool = False
    metrics_after: dict | None = None
    edits: tuple = ()  # added field: text edits of kind rewrite-call ({file, start, end, new_text})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["edits"] = list(self.edits)
        return d


@dataclass(frozen=True)
class Finding:
    """One problem found, in the user's terms. Immutable; use ``with_(...)`` to derive."""

    rule: str
    severity: Severity
    stage: Stage
    message: str
    layer: str | None = None
    location: Location = field(default_factory=Location)
    hyperparameter: str | None = None
    evidence: dict = field(default_factory=dict)
    repair: Repair | None = None

    def __post_init__(self):
        if self.severity not in SEVERITIES:
            raise ValueError(f"bad severity {self.severity!r}")
        if self.stage not in CONVERSION_STAGES + TRAINING_STAGES:
            raise ValueError(f"bad stage {self.stage!r}")

    @classmethod
    def from_error(cls, e, fallback: str) -> Finding:
        """A ``ConvlintError`` as the one error finding that says why: its rule (``fallback``
        when it names none convlint knows), its message and hint."""
        from convlint.analyzers import rules as R

        rule = e.rule if e.rule in R.RULES else fallback
        return cls(rule, "error", "input", e.message + (f". {e.hint}" if e.hint else ""))

    def with_(self, **changes: Any) -> Finding:
        return replace(self, **changes)

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "severity": self.severity,
            "stage": self.stage,
            "message": self.message,
            "layer": self.layer,
            "location": self.location.to_dict(),
            "hyperparameter": self.hyperparameter,
            "evidence": _jsonable(self.evidence),
            "repair": self.repair.to_dict() if self.repair else None,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Finding:
        rep = d.get("repair")
        return cls(
            rule=d["rule"], severity=d["severity"], stage=d["stage"], message=d["message"],
            layer=d.get("layer"), location=Location.from_dict(d.get("location")),
            hyperparameter=d.get("hyperparameter"), evidence=d.get("evidence") or {},
            repair=Repair(**{**rep, "edits": tuple(rep.get("edits") or ())}) if rep else None,
        )


@dataclass(frozen=True)
class ModelRef:
    path: str
    format: str

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format}


@dataclass(frozen=True)
class ConversionReport:
    """The conversion report of the contract (``kind: conversion``)."""

    source: ModelRef | None
    target: ModelRef | None
    inputs: dict
    verdict: ConversionVerdict
    metrics: dict
    findings: tuple[Finding, ...] = ()
    extra: dict = field(default_factory=dict)  # added fields (contract allows additions)

    kind = "conversion"

    @property
    def exit_code(self) -> int:
        if self.verdict == "error":
            return 2
        return 1 if any(f.severity == "error" for f in self.findings) else 0

    def to_dict(self) -> dict:
        d = {
            "tool": {"name": "convlint", "version": __version__},
            "kind": "conversion",
            "source": self.source.to_dict() if self.source else None,
            "target": self.target.to_dict() if self.target else None,
            "inputs": self.inputs,
            "verdict": self.verdict,
            "metrics": _jsonable(self.metrics),
            "findings": [f.to_dict() for f in self.findings],
        }
        d.update(_jsonable(self.extra))
        return d

    @classmethod
    def unanalysed(cls, source: str, target: str, verdict: ConversionVerdict,
                   finding: Finding) -> ConversionReport:
        """A pair that could not be analysed (``error``) or whose check crashed (``crash``):
        the one finding says why."""
        return cls(
            ModelRef(source, "unknown"),
            ModelRef(target, "unknown"),
            {"count": 0, "origin": "none"},
            verdict,
            {},
            (finding,),
        )

    @classmethod
    def from_dict(cls, d: dict) -> ConversionReport:
        known = {"tool", "kind", "source", "target", "inputs", "verdict", "metrics", "findings"}
        return cls(
            source=ModelRef(**d["source"]) if d.get("source") else None,
            target=ModelRef(**d["target"]) if d.get("target") else None,
            inputs=d.get("inputs") or {}, verdict=d["verdict"], metrics=d.get("metrics") or {},
            findings=tuple(Finding.from_dict(f) for f in d.get("findings", [])),
            extra={k: v for k, v in d.items() if k not in known},
        )


def _jsonable(obj: Any) -> Any:
    """Turn numpy scalars and arrays, tuples and non-finite floats into plain JSON values."""
    import math

    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):
        return _jsonable(obj.tolist())
    if isinstance(obj, float):
        if math.isnan(obj) or math.isinf(obj):
            return None if math.isnan(obj) else (1e308 if obj > 0 else -1e308)
        return obj
    return obj


SCRIPT_VERDICTS: tuple[str, ...] = get_args(ScriptVerdict)


@dataclass(frozen=True)
class ScriptReport:
    """A report on one script: ``kind`` is ``script`` (static rules) or ``trace`` (an
    instrumented run, whose ``conversions`` hold one conversion report per captured call)."""

    script: str
    verdict: ScriptVerdict | TrainingVerdict  # training when kind is "training"
    findings: tuple[Finding, ...] = ()
    kind: str = "script"
    conversions: tuple = ()  # ConversionReports, for kind "trace"
    extra: dict = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        if self.verdict == "error":
            return 2
        fs = list(self.findings) + [f for c in self.conversions for f in c.findings]
        return 1 if any(f.severity == "error" for f in fs) else 0

    def to_dict(self) -> dict:
        d = {"tool": {"name": "convlint", "version": __version__}, "kind": self.kind,
             "script": self.script, "verdict": self.verdict,
             "findings": [f.to_dict() for f in self.findings]}
        if self.kind == "trace":
            d["conversions"] = [c.to_dict() for c in self.conversions]
        d.update(_jsonable(self.extra))
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ScriptReport:
        known = {"tool", "kind", "script", "verdict", "findings", "conversions"}
        return cls(
            d["script"],
            d["verdict"],
            tuple(Finding.from_dict(f) for f in d.get("findings", [])),
            d.get("kind", "script"),
            tuple(ConversionReport.from_dict(c) for c in d.get("conversions", [])),
            {k: v for k, v in d.items() if k not in known},
        )


@dataclass(frozen=True)
class CheckReport:
    """``convlint check``: one document holding a report per analysed path or pair."""

    reports: tuple = ()
    extra: dict = field(default_factory=dict)
    # the comparison with a stored run (analyzers/baseline.py), when one was given: then a pair
    # fails the run only by regressing, not by failing as it already did
    baseline: dict | None = None

    kind = "check"

    @property
    def exit_code(self) -> int:
        judged = [r for r in self.reports if self.baseline is None or r.kind != "conversion"]
        codes = [r.exit_code for r in judged]
        if self.baseline is not None and self.baseline.get("regressions"):
            codes.append(1)
        return 2 if 2 in codes else 1 if 1 in codes else 0

    @property
    def verdict(self) -> str:
        return {0: "clean", 1: "issues", 2: "error"}[self.exit_code]

    def all_findings(self) -> list:
        out = []
        for r in self.reports:
            out += list(r.findings)
            for c in getattr(r, "conversions", ()):
                out += list(c.findings)
        return out

    def to_dict(self) -> dict:
        fs = self.all_findings()
        d = {
            "tool": {"name": "convlint", "version": __version__},
            "kind": "check",
            "verdict": self.verdict,
            "reports": [r.to_dict() for r in self.reports],
            "summary": {
                "reports": len(self.reports),
                **{s: sum(f.severity == s for f in fs) for s in SEVERITIES},
            },
        }
        d.update(_jsonable(self.extra))
        if self.baseline is not None:
            d["baseline"] = _jsonable(self.baseline)
        return d
