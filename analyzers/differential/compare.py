"""Compare two executions' outputs: metrics and a pass/fail in Polygraphy's sense.

An element mismatches when ``|a - b| > atol`` *and* ``|a - b| / |b| > rtol`` (NaN counts as a
mismatch), ``b`` being the reference. Pure numpy; no runner is imported here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from convlint.analyzers import defaults as D


@dataclass(frozen=True)
class Tolerance:
    atol: float = D.ATOL
    rtol: float = D.RTOL


@dataclass
class Comparison:
    """Two runs compared; ``incomparable`` says why they could not be (then nothing else is set
    and the comparison does not pass)."""

    max_abs: float
    mean_abs: float
    cosine_min: float
    top1_agreement: float | None
    mismatched: int  # elements that fail the tolerance
    total: int
    worst_output: str | None = None
    incomparable: str | None = None

    @classmethod
    def refused(cls, why: str) -> Comparison:
        return cls(float("nan"), float("nan"), float("nan"), None, 0, 0, None, why)

    @property
    def passed(self) -> bool:
        return self.incomparable is None and self.mismatched == 0

    def metrics(self) -> dict:
        return {"max_abs": self.max_abs, "mean_abs": self.mean_abs,
                "cosine_min": self.cosine_min, "top1_agreement": self.top1_agreement}

    def summary(self) -> dict | str:
        """The metrics, or why the runs could not be compared (the report's shape)."""
        return self.incomparable if self.incomparable is not None else self.metrics()


def align_outputs(ref: list, other: list) -> list | str:
    """Pair output arrays. Returns ``[(ref_i, other_i)]`` or a reason they cannot be paired.

    Same shape, or the same elements reshaped (a squeezed dim), or a rank-4 map in the other
    layout (NHWC/NCHW) are accepted."""
    if len(ref) != len(other):
        return f"the source has {len(ref)} outputs and the target {len(other)}"
    pairs = []
    for i, (a, b) in enumerate(zip(ref, other, strict=True)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape == b.shape:
            pairs.append((a, b))
        elif a.ndim == 4 and b.ndim == 4 and np.transpose(b, (0, 2, 3, 1)).shape == a.shape:
            pairs.append((a, np.transpose(b, (0, 2, 3, 1))))
        elif a.ndim == 4 and b.ndim == 4 and np.transpose(b, (0, 3, 1, 2)).shape == a.shape:
            pairs.append((a, np.transpose(b, (0, 3, 1, 2))))
        elif a.size == b.size:
            pairs.append((a, b.reshape(a.shape)))
        else:
            return f"output {i} has shape {a.shape} in the source and {b.shape} in the target"
    return pairs


def _is_class_vector(a: np.ndarray) -> bool:
    squeezed = a.reshape(-1) if a.ndim <= 2 and (a.ndim < 2 or a.shape[0] == 1) else None
    return squeezed is not None and squeezed.size >= 2 and np.issubdtype(a.dtype, np.floating)


def compare_runs(ref_runs: list[list], other_runs: list[list], tol: Tolerance,
                 names: list | None = None) -> Comparison:
    """Compare per-sample output lists (``runs[sample][output]``). Reference first. When the
    outputs cannot be paired, the Comparison's ``incomparable`` says why."""
    max_abs = 0.0
    abs_sum = 0.0
    total = 0
    mismatched = 0
    cos_min = 1.0
    top1 = []
    worst = (0.0, None)
    for ref, other in zip(ref_runs, other_runs, strict=True):
        pairs = align_outputs(ref, other)
        if isinstance(pairs, str):
            return Comparison.refused(pairs)
        flat_a, flat_b = [], []
        for j, (a, b) in enumerate(pairs):
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            diff = np.abs(a64 - b64)
            with np.errstate(divide="ignore", invalid="ignore"):
                rel = diff / np.abs(a64)
            bad = ((diff > tol.atol) | np.isnan(diff)) & ((rel > tol.rtol) | np.isnan(rel))
            mismatched += int(bad.sum())
            total += diff.size
            m = float(np.nanmax(diff)) if diff.size and not np.all(np.isnan(diff)) else 0.0
            if np.isnan(diff).any():
                m = float("inf")
            if m > worst[0]:
                worst = (m, names[j] if names and j < len(names) else str(j))
            max_abs = max(max_abs, m)
            abs_sum += float(np.nansum(diff))
            flat_a.append(a64.ravel())
            flat_b.append(b64.ravel())
        va, vb = np.concatenate(flat_a), np.concatenate(flat_b)
        cos_min = min(cos_min, _cosine(va, vb))
        first_a, first_b = pairs[0]
        if _is_class_vector(first_a):
            top1.append(int(np.argmax(first_a)) == int(np.argmax(first_b)))
    return Comparison(max_abs=max_abs, mean_abs=abs_sum / max(total, 1), cosine_min=cos_min,
                      top1_agreement=(sum(top1) / len(top1)) if top1 else None,
                      mismatched=mismatched, total=total, worst_output=worst[1])


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    if not (np.all(np.isfinite(a)) and np.all(np.isfinite(b))):
        return float("nan")
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))
