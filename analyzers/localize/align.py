"""Graph alignment: which target node carries each source layer.

Two mechanisms, both independent of names:

* **Weights.** Weight-bearing layers are matched by their canonical kernels (layout-normalized,
  see ``canonical``), scored by the mean absolute cosine of each output channel. The score is
  invariant to BatchNorm folding (a positive or negative per-channel scale) and nearly so to
  quantization, and unrelated kernels of the same shape score near 0. A kernel whose height and
  width were swapped is matched too, and marked.
* **Activations.** Every source layer output is matched to the target tensor holding the same
  values on the same input, up to an NHWC/NCHW permutation, with permutation-invariant
  statistics as a prefilter. A source layer fused away in the target (a conv whose BatchNorm and
  ReLU were folded in) finds no tensor of its own; the consumer chain tells it apart from a
  divergent one.

Names are used only to break ties between equal scores.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from convlint.analyzers.localize.canonical import Kernel

MIN_SCORE = 0.3  # below this a same-shape pair is matched by position only, and marked weak


@dataclass
class KernelMatch:
    source: Kernel
    target: Kernel
    score: float
    method: str  # "weights", "weights-hw-swapped", "position"

    def to_dict(self) -> dict:
        return {"source": self.source.layer, "target": self.target.layer,
                "kind": self.source.kind, "score": round(self.score, 6), "method": self.method,
                "bn_folded_from": (self.source.bn or {}).get("layer")}


@dataclass
class ActivationMatch:
    source: str
    target: str | None
    rel_err: float  # ||s - t|| / ||s||, mean over samples; inf when unmatched
    permutation: tuple | None = None

    def to_dict(self) -> dict:
        return {"source": self.source, "target": self.target,
                "rel_err": None if not np.isfinite(self.rel_err) else float(self.rel_err)}


@dataclass
class Alignment:
    kernels: list = field(default_factory=list)        # KernelMatch
    activations: list = field(default_factory=list)    # ActivationMatch, source forward order
    unmatched_source: list = field(default_factory=list)
    unmatched_target: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"kernels": [m.to_dict() for m in self.kernels],
                "activations": [a.to_dict() for a in self.activations],
                "unmatched_source": self.unmatched_source,
                "unmatched_target": self.unmatched_target}


def channel_score(a: np.ndarray, b: np.ndarray) -> float:
    """Mean |cosine| between matching output channels of two canonical kernels."""
    a2, b2 = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    na, nb = np.linalg.norm(a2, axis=1), np.linalg.norm(b2, axis=1)
    ok = (na > 0) & (nb > 0)
    if not ok.any():
        return 1.0 if np.allclose(a2, b2) else 0.0
    cos = np.abs((a2[ok] * b2[ok]).sum(1)) / (na[ok] * nb[ok])
    return float(cos.mean())


def _candidates(s: Kernel, t: Kernel) -> list:
    out = []
    if s.kind != t.kind:
        return out
    if s.weight.shape == t.weight.shape:
        out.append(("weights", channel_score(s.weight, t.weight)))
    if (
        s.weight.ndim == 4
        and np.swapaxes(s.weight, 2, 3).shape == t.weight.shape
        and s.weight.shape[2] != s.weight.shape[3]
        or (
            s.weight.ndim == 4
            and s.weight.shape == t.weight.shape
            and s.weight.shape[2] == s.weight.shape[3] > 1
        )
    ):
        out.append(("weights-hw-swapped", channel_score(np.swapaxes(s.weight, 2, 3), t.weight)))
    return out


def match_kernels(src: list, tgt: list) -> tuple:
    """Greedy best-first assignment of source kernels to target kernels.

    Returns ``(matches, unmatched_source, unmatched_target)``."""
    scored = []
    for i, s in enumerate(src):
        for j, t in enumerate(tgt):
            for method, score in _candidates(s, t):
                # a swapped kernel must beat the plain reading clearly to be called swapped
                bonus = 0.0 if method == "weights" else -0.05
                name_tie = 1e-6 if _name_hint(s.layer, t.layer) else 0.0
                scored.append((score + bonus + name_tie, score, method, i, j))
    scored.sort(key=lambda r: (-r[0], r[3], r[4]))
    used_s, used_t, matches = set(), set(), []
    for _, score, method, i, j in scored:
        if i in used_s or j in used_t or score < MIN_SCORE:
            continue
        used_s.add(i)
        used_t.add(j)
        matches.append(KernelMatch(src[i], tgt[j], score, method))
    # same-shape leftovers in order: damaged beyond recognition, matched by position
    for i, s in enumerate(src):
        if i in used_s:
            continue
        for j, t in enumerate(tgt):
            if j not in used_t and s.kind == t.kind and s.weight.shape == t.weight.shape:
                used_s.add(i)
                used_t.add(j)
                matches.append(KernelMatch(s, t, channel_score(s.weight, t.weight), "position"))
                break
    matches.sort(key=lambda m: m.source.index)
    return (matches, [s.layer for i, s in enumerate(src) if i not in used_s],
            [t.layer for j, t in enumerate(tgt) if j not in used_t])


def _name_hint(a: str, b: str) -> bool:
    a = a.lower().replace(".", "/").strip("/")
    return bool(a) and a in b.lower().replace(".", "/")


# --------------------------------------------------------------------------- activations
def _stats(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64).ravel()
    return np.array([x.mean(), x.std(), np.abs(x).mean(), x.max(), x.min()])


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """||a - b|| / ||a|| (||a - b|| when a is zero); inf when either holds a non-finite value."""
    na = np.linalg.norm(a)
    d = np.linalg.norm(a - b)
    if not np.isfinite(d):
        return float("inf")
    return float(d / na) if na > 0 else float(d)


def _views(src: np.ndarray, tgt: np.ndarray) -> list:
    """Every reading of ``tgt`` in ``src``'s layout: ``[(array, permutation)]``.

    Identity and NHWC/NCHW are all tried when shapes allow (a 32x32x32 map fits both)."""
    out = []
    if tgt.shape == src.shape:
        out.append((tgt, None))
    if src.ndim == 4 and tgt.ndim == 4:
        for perm in ((0, 2, 3, 1), (0, 3, 1, 2)):
            if np.transpose(tgt, perm).shape == src.shape:
                out.append((np.transpose(tgt, perm), perm))
    if not out and tgt.size == src.size and (src.ndim <= 2 or tgt.ndim <= 2):
        out.append((tgt.reshape(src.shape), None))
    return out


def match_activations(source_order: list, src_runs: list, tgt_runs: list, top: int = 4) -> list:
    """For each source layer (forward order), the target tensor closest in value.

    ``src_runs``/``tgt_runs``: per sample, ``{name: array}``. The error is averaged over
    samples; the first sample chooses the candidates."""
    tgt0 = tgt_runs[0]
    tnames = [n for n, v in tgt0.items() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    tstats = {n: _stats(np.asarray(tgt0[n])) for n in tnames}
    tsize = {n: np.asarray(tgt0[n]).size for n in tnames}
    out = []
    for name in source_order:
        if name not in src_runs[0]:
            continue
        s0 = np.asarray(src_runs[0][name])
        if not np.issubdtype(s0.dtype, np.floating):
            continue
        st = _stats(s0)
        scale = np.abs(st).max() + 1e-12
        cands = [n for n in tnames if tsize[n] == s0.size]
        cands.sort(key=lambda n: float(np.abs(tstats[n] - st).max() / scale))
        best = ActivationMatch(name, None, float("inf"))
        for n in cands[:top]:
            for k in range(len(_views(s0, np.asarray(tgt0[n])))):
                errs, perm = [], None
                for srun, trun in zip(src_runs, tgt_runs, strict=False):
                    sv = np.asarray(srun[name])
                    views = _views(sv, np.asarray(trun[n]))
                    if k >= len(views):
                        errs = None
                        break
                    view, perm = views[k]
                    errs.append(rel_err(sv.astype(np.float64), view.astype(np.float64)))
                if errs and np.mean(errs) < best.rel_err:
                    best = ActivationMatch(name, n, float(np.mean(errs)), perm)
        out.append(best)
    return out
