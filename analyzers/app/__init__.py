"""The use cases: one function per thing a user asks convlint to do, each taking one request
(``requests.py``) and returning one report. The CLI, the language server's worker and
``convlint check``'s pool call these; nothing above this layer builds engine options itself.

- ``diff``: check a converted model against its source (differential check, localization,
  repair); a pair that cannot be analysed raises ConvlintError.
- ``check_pair``: the same, but an unanalysable pair becomes an ``error`` report with the one
  finding that says why (what batch callers need to go on with the other pairs).
- ``localize_saved``: the localization stages over a capture ``diff`` saved, without the models.
- ``trace``: run a conversion script with its converters instrumented and check each conversion.
- ``train``: run a training script with probes and check its training.
- ``check``: lint a project (scripts, model pairs, training scripts) under its configuration.

``diff`` reports its progress as steps of a known count (``progress.staged``), so a progress bar
advances through the check's stages instead of spinning.

Imports are lazy: the language server imports this package without any framework.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from convlint.analyzers.app.progress import staged
from convlint.analyzers.app.requests import CheckRequest, DiffRequest, TraceRequest, TrainRequest

if TYPE_CHECKING:
    from convlint.analyzers.report.findings import CheckReport, ConversionReport, ScriptReport

__all__ = ["CheckRequest", "DiffRequest", "TraceRequest", "TrainRequest", "check", "check_pair",
           "diff", "localize_saved", "trace", "train"]


def diff(req: DiffRequest, progress: Callable | None = None) -> ConversionReport:
    from convlint.analyzers.pipeline import check_paths

    return check_paths(req.source, req.target, req.pipeline_options(), staged(progress, req))


def check(req: CheckRequest, progress: Callable | None = None) -> CheckReport:
    from convlint.analyzers.project import run_check

    return run_check(req.options(), progress)


def check_pair(req: DiffRequest, progress: Callable | None = None) -> ConversionReport:
    from convlint.analyzers.pipeline import check_paths_or_error

    return check_paths_or_error(req.source, req.target, req.pipeline_options(), progress)


def localize_saved(path: str, layer_rtol: float | None = None):
    """The localization stages replayed on a capture ``convlint diff --save-capture`` wrote,
    without the models (``pipeline.localize_saved``): a ``stages.Localization``."""
    from convlint.analyzers.pipeline import localize_saved as run

    return run(path, layer_rtol)


def trace(req: TraceRequest, diff: DiffRequest | None = None,
          progress: Callable | None = None) -> ScriptReport:
    """``diff`` carries check options beyond the trace's own (inputs, preprocessing, shapes)."""
    from convlint.analyzers.scripts.trace import trace_script

    return trace_script(req.script, req.options(diff), progress)


def train(req: TrainRequest, thresholds: Any = None,
          progress: Callable | None = None) -> ScriptReport:
    from convlint.analyzers.training.check import train_check

    return train_check(req.script, req.options(thresholds), progress)
