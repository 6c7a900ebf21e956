"""One policy step over findings: select/ignore and per-rule severity (flake8's style guide).

In: a report and a ``Config``. Out: the same kind of report with findings dropped or their
severity changed. Reports that could not be analysed (verdict ``error``) are left whole: their
finding says why nothing was checked.
"""

from __future__ import annotations

from dataclasses import replace

from convlint.analyzers.config import Config, selected


def _findings(fs, cfg: Config) -> tuple:
    out = []
    for f in fs:
        if not selected(f.rule, cfg.select, cfg.ignore):
            continue
        if f.rule in cfg.severity:
            f = f.with_(severity=cfg.severity[f.rule])
        out.append(f)
    return tuple(out)


def apply(report, cfg: Config):
    if report.verdict == "error" or not (cfg.select or cfg.ignore or cfg.severity):
        return report
    r = replace(report, findings=_findings(report.findings, cfg))
    if getattr(report, "conversions", ()):
        r = replace(r, conversions=tuple(apply(c, cfg) for c in report.conversions))
    if getattr(r, "kind", "") == "script" and r.verdict in ("clean", "issues"):
        bad = any(f.severity in ("error", "warning") for f in r.findings)
        r = replace(r, verdict="issues" if bad else "clean")
    if getattr(r, "kind", "") == "training" and r.verdict in ("healthy", "faulty"):
        r = replace(
            r, verdict="faulty" if any(f.severity == "error" for f in r.findings) else "healthy"
        )
    return r
