"""Findings and reports: immutable values, serializable to the JSON contract and back.

See ``../shared/contract.md``. Nothing here imports a framework.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from convlint import __version__

SEVERITIES = ("error", "warning", "info")
CONVERSION_STAGES = ("conversion-tool", "parameters", "hyperparameters", "graph", "input", "runtime")
TRAINING_STAGES = ("forward", "backward", "loss", "metric", "trend", "data")
REPAIR_KINDS = ("patch-weights", "patch-attributes", "patch-graph", "rewrite-call",
                "change-hyperparameter", "none")


@dataclass(frozen=True)
class Location:
    file: str | None = None
    line: int | None = None
    column: int | None = None
    source_node: str | None = None
    target_node: str | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class Repair:
    kind: str
    description: str
    output: str | None = None
    verified: bool = False
    metrics_after: dict | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Finding:
    """One problem found, in the user's terms. Immutable; use ``with_(...)`` to derive."""

    rule: str
    severity: str
    stage: str
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
            layer=d.get("layer"), location=Location(**(d.get("location") or {})),
            hyperparameter=d.get("hyperparameter"), evidence=d.get("evidence") or {},
            repair=Repair(**rep) if rep else None,
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
    verdict: str
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
