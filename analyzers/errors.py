"""The one error path of convlint.

A user mistake (bad arguments, an unreadable or unsupported file) raises :class:`ConvlintError`
with a message that says what to do. The CLI turns it into exit code 2 and a JSON ``error``
report. Anything else that escapes is a convlint bug and is reported as an internal error.
"""

from __future__ import annotations


class ConvlintError(Exception):
    """A problem with the user's input that convlint can explain.

    ``rule`` is the rule code reported in the error finding, ``hint`` says what to do.
    """

    def __init__(self, message: str, *, rule: str = "CL001", hint: str | None = None,
                 path: str | None = None):
        super().__init__(message)
        self.message = message
        self.rule = rule
        self.hint = hint
        self.path = path

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class ModelLoadError(ConvlintError):
    """A model file could not be read: corrupt, truncated, empty or of an unknown format."""

    def __init__(self, message: str, **kw):
        kw.setdefault("rule", "CL002")
        super().__init__(message, **kw)


class StepFailed(Exception):
    """A model failed to load, compile or run inside a runtime: a ``crash`` for the report.

    ``step`` is one of ``load``, ``compile``, ``run``; ``backend`` names the runtime
    (``onnxruntime``, ``tflite``, ``tf``, ``torch``, ``tvm``); ``op`` names the failing op or
    node where the runtime said which.
    """

    def __init__(self, step: str, backend: str, message: str, *, op: str | None = None):
        super().__init__(message)
        self.step = step
        self.backend = backend
        self.message = message
        self.op = op
