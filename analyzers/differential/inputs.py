"""Inputs for a differential check: concrete shapes, layout matching, random or loaded data.

Pure numpy (Pillow only for image folders). Nothing here runs a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from convlint.analyzers.errors import ConvlintError

NHWC_TO_NCHW = (0, 3, 1, 2)
NCHW_TO_NHWC = (0, 2, 3, 1)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


@dataclass(frozen=True)
class InputPlan:
    """How source inputs map to target inputs.

    ``source_shapes``/``target_shapes``: concrete shapes (batch 1); ``pairs``: source name ->
    (target name, permutation or None).
    """

    source_shapes: dict
    target_shapes: dict
    dtypes: dict
    pairs: dict

    @property
    def transposed(self) -> dict:
        return {s: (t, perm) for s, (t, perm) in self.pairs.items() if perm is not None}

    def for_target(self, x: dict) -> dict:
        out = {}
        for s, (t, perm) in self.pairs.items():
            v = x[s]
            out[t] = np.ascontiguousarray(np.transpose(v, perm)) if perm is not None else v
        return out


def parse_shape_arg(text: str) -> dict:
    """``"name:1x3x224x224,other:1x10"`` or ``"1x3x224x224"`` -> ``{name or "": (dims)}``."""
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, dims = part.rpartition(":")
        try:
            out[name] = tuple(int(d) for d in dims.lower().split("x"))
        except ValueError:
            raise ConvlintError(f"--input-shape: cannot read {part!r}",
                                hint="write it as NAME:1x3x224x224 or 1x3x224x224") from None
    return out


def _concrete(shape, fallback) -> tuple | None:
    if shape is None or len(shape) == 0:
        return tuple(fallback) if fallback else None
    dims = []
    for i, d in enumerate(shape):
        if d is None:
            if fallback and len(fallback) == len(shape) and fallback[i] is not None:
                d = fallback[i]
            elif i == 0:
                d = 1
            else:
                return None
        dims.append(int(d))
    return tuple(dims)


def _match(src: tuple, tgt) -> tuple | Literal[False] | None:
    """None when shapes agree, a permutation when they agree after NHWC<->NCHW, else False."""
    if not tgt:
        return None
    if len(src) == len(tgt) and all(t is None or t == s for s, t in zip(src, tgt, strict=True)):
        return None
    if len(src) == 4 and len(tgt) == 4:
        for perm in (NHWC_TO_NCHW, NCHW_TO_NHWC):
            p = tuple(src[i] for i in perm)
            if all(t is None or t == s for s, t in zip(p, tgt, strict=True)):
                return perm
    return False


def plan_inputs(source_specs, target_specs, given: dict | None = None) -> InputPlan:
    """Fix every dynamic dim and map source inputs to target inputs (by name, then by order)."""
    given = given or {}
    if len(source_specs) != len(target_specs):
        raise _io_mismatch(f"the source has {len(source_specs)} inputs and the target "
                           f"{len(target_specs)}")
    tnames = {t.name for t in target_specs}
    by_name = all(s.name in tnames for s in source_specs)
    tmap = {t.name: t for t in target_specs}
    src_shapes, tgt_shapes, dtypes, pairs = {}, {}, {}, {}
    for i, s in enumerate(source_specs):
        t = tmap[s.name] if by_name else target_specs[i]
        g = (
            given.get(s.name)
            or given.get(t.name)
            or (given.get("") if len(source_specs) == 1 else None)
        )
        shape = _concrete(
            g or s.shape, t.shape if t.shape and len(t.shape) == len(s.shape or ()) else None
        )
        if shape is None and t.shape:  # the source says nothing (TorchScript): use the target's
            tshape = _concrete(t.shape, None)
            shape = tshape
        if shape is None:
            raise ConvlintError(
                f"cannot tell the shape of input {s.name!r}: the models leave it dynamic",
                hint="pass --input-shape NAME:1x3x224x224")
        perm = _match(shape, t.shape)
        if perm is False and s.shape in ((), None):
            perm = None  # the source gave no shape: it takes whatever the target takes
        if perm is False:
            raise _io_mismatch(f"input {s.name!r} has shape {shape} in the source but "
                               f"{tuple(t.shape)} in the target")
        src_shapes[s.name] = shape
        tgt_shapes[t.name] = tuple(shape[j] for j in perm) if perm else shape
        dtypes[s.name] = s.dtype if s.dtype != "float32" or t.dtype == s.dtype else s.dtype
        pairs[s.name] = (t.name, perm)
    return InputPlan(src_shapes, tgt_shapes, dtypes, pairs)


def _io_mismatch(text: str) -> ConvlintError:
    return ConvlintError(f"source and target inputs cannot be matched: {text}", rule="CL021",
                         hint="pass --input-shape, or check that you compare the right pair")


def random_inputs(plan: InputPlan, n: int, seed: int, ranges: dict | None = None) -> list[dict]:
    """``n`` seeded samples; floats uniform in [-1, 1] (or in ``ranges[name]``: a quantized
    model is judged inside the range it was calibrated for), integers in [0, 10), booleans
    fair."""
    rng = np.random.default_rng(seed)
    ranges = ranges or {}
    out = []
    for _ in range(n):
        sample = {}
        for name, shape in plan.source_shapes.items():
            dt = np.dtype(plan.dtypes.get(name, "float32"))
            if np.issubdtype(dt, np.floating):
                lo, hi = ranges.get(name, (-1.0, 1.0))
                sample[name] = rng.uniform(lo, hi, shape).astype(dt)
            elif dt == np.bool_:
                sample[name] = rng.integers(0, 2, shape).astype(dt)
            else:
                sample[name] = rng.integers(0, 10, shape).astype(dt)
        out.append(sample)
    return out


def load_inputs(path: str, plan: InputPlan, *, scale: float = 1.0, mean=None, std=None,
                limit: int | None = None, flag: str = "--inputs") -> list[dict]:
    """Samples from a ``.npy`` (one input), an ``.npz`` (arrays named by input) or a folder of
    images. Images are resized to the source input's H and W, multiplied by ``scale``, then
    normalized with ``mean`` and ``std`` (per channel or scalar)."""
    p = Path(path)
    names = list(plan.source_shapes)
    if not p.exists():
        raise ConvlintError(f"{flag}: {path} does not exist")
    if p.is_dir():
        arrays = {names[0]: _load_images(p, plan.source_shapes[names[0]], scale, mean, std)}
    elif p.suffix == ".npy":
        arrays = {names[0]: np.load(p, allow_pickle=False)}
    elif p.suffix == ".npz":
        with np.load(p, allow_pickle=False) as z:
            keys = list(z.keys())
            arrays = {
                n: z[n] if n in z else z[keys[i]] for i, n in enumerate(names) if i < len(keys)
            }
        if len(arrays) != len(names):
            raise ConvlintError(f"{flag}: {path} has {len(keys)} arrays for {len(names)} inputs")
    else:
        raise ConvlintError(f"{flag}: {path} is not a .npy, a .npz or a folder of images")
    samples = []
    count = None
    for n, a in arrays.items():
        shape = plan.source_shapes[n]
        a = np.asarray(a)
        if a.shape == shape:
            a = a[None]
        elif a.ndim == len(shape) and a.shape[1:] == shape[1:]:
            a = a[:, None]
        elif a.shape[1:] != shape:
            raise ConvlintError(f"{flag}: array {n!r} has shape {a.shape}; expected {shape} or "
                                f"(N, {', '.join(map(str, shape))})")
        count = len(a) if count is None else min(count, len(a))
        arrays[n] = a.astype(plan.dtypes.get(n, "float32"))
    for i in range(min(count or 0, limit or count or 0)):
        samples.append({n: arrays[n][i] for n in arrays})
    if not samples:
        raise ConvlintError(f"{flag}: {path} holds no samples")
    return samples


def _load_images(folder: Path, shape: tuple, scale, mean, std) -> np.ndarray:
    from PIL import Image

    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise ConvlintError(f"--inputs: {folder} holds no images")
    nchw = len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3)
    h, w, c = (shape[2], shape[3], shape[1]) if nchw else (shape[1], shape[2], shape[3])
    out = []
    for f in files:
        try:
            img = Image.open(f).convert("L" if c == 1 else "RGB").resize((w, h))
        except Exception as e:
            raise ConvlintError(f"--inputs: cannot read image {f}: {e}") from None
        a = np.asarray(img, dtype=np.float32).reshape(h, w, c) * scale
        if mean is not None:
            a = a - np.asarray(mean, dtype=np.float32)
        if std is not None:
            a = a / np.asarray(std, dtype=np.float32)
        out.append(np.transpose(a, (2, 0, 1)) if nchw else a)
    return np.stack(out)[:, None]
