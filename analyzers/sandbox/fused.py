"""Fused, batched statistics for the probes: all of a step's tensors reduced at once where they
live, kept in a preallocated buffer, and read back every ``size`` steps.

A probe describes a step as a *signature* (one ``(layer, kind, activation)`` per row) and a
device tensor of rows of ``record.RAW`` columns. ``StepBuffer`` keeps up to ``size`` steps,
then reads them back with one host transfer and hands them to the recorder with their exact
step numbers (``Recorder.add_step``), so a first non-finite value keeps its step and layer
whatever the batch size. Framework code is imported lazily (torch here; TensorFlow in
``probe_keras_step``).
"""

from __future__ import annotations

from .record import RAW, Recorder, decode_row

NCOL = len(RAW)


def torch_rows(tensors: list, acts: list):
    """One row of RAW columns per tensor, as one device tensor, with a handful of reductions per
    tensor and no host transfer. ``acts[i]`` names the activation whose saturation or dead units
    row i measures (or None). A tensor with non-finite values keeps its exact count of them (and
    so its step and layer); its other statistics are then not finite (decode_row drops them).

    Measured here: concatenating a step's tensors and reducing them with segment reductions is
    slower on CPU than these per-tensor reductions (torch's CPU segment_reduce is a plain loop)."""
    import torch

    rows = []
    with torch.no_grad():
        for t, a in zip(tensors, acts, strict=True):
            f = t.detach().reshape(-1)
            if f.dtype != torch.float32:
                f = f.float()
            mn, mx = torch.aminmax(f)
            cols = [torch.isfinite(f).sum(), f.sum(), torch.dot(f, f), (f == 0).sum()]
            if a == "sigmoid":
                cols += [((f < 0.01) | (f > 0.99)).sum(), torch.zeros((), dtype=f.dtype)]
            elif a == "tanh":
                cols += [torch.zeros((), dtype=f.dtype), (f.abs() > 0.99).sum()]
            else:
                cols += [torch.zeros((), dtype=f.dtype)] * 2
            if a in ("relu", "leaky_relu") and t.dim() >= 2:  # a unit is dead when never positive
                alive = (t.detach() > 0).movedim(1, 0).reshape(t.shape[1], -1).any(dim=1)
                dead = 1.0 - alive.float().mean()
            else:
                dead = torch.tensor(-1.0)
            rows.append(torch.stack([torch.tensor(float(f.numel())), *[c.float() for c in cols], mn, mx, dead]))
        return torch.stack(rows)


class StepBuffer:
    """Steps whose statistics are still on the device; read back in batches of ``size``.

    ``push`` takes a step's number, epoch, signature, rows (a device tensor) and loss (a device
    scalar or a float) and metrics (name -> device scalar or float); ``flush`` reads all held
    steps back with ``readback`` (a function of a list of device values that returns them as
    nested lists) and records them. Returns the first reason to stop, if any."""

    def __init__(self, rec: Recorder, readback, size: int = 32):
        self.rec, self.readback, self.size = rec, readback, max(1, size)
        self.items: list = []
        rec.flushers.append(self.flush)

    def push(self, step: int, epoch, sig: list, rows, loss=None, metrics: dict | None = None) -> str | None:
        self.items.append((step, epoch, sig, rows, loss, metrics or {}))
        return self.flush() if len(self.items) >= self.size else None

    def flush(self) -> str | None:
        items, self.items = self.items, []
        if not items:
            return None
        mkeys = sorted({k for it in items for k in it[5]})
        values = self.readback([it[3] for it in items] + [it[4] for it in items] +
                               [it[5].get(k) for it in items for k in mkeys])
        n = len(items)
        rows_list, losses, mvals = values[:n], values[n:2 * n], values[2 * n:]
        reason = None
        for j, (step, epoch, sig, _rows, _loss, _m) in enumerate(items):
            layers: dict = {}
            for (layer, kind, act), row in zip(sig, rows_list[j], strict=True):
                layers.setdefault(layer, {})[kind] = decode_row(row, act)
            metrics = {k: mvals[j * len(mkeys) + i] for i, k in enumerate(mkeys)
                       if mvals[j * len(mkeys) + i] is not None}
            r = self.rec.add_step({"step": step, "epoch": epoch, "layers": layers, "loss": losses[j],
                                   "metrics": metrics})
            reason = reason or r
        return reason


def torch_readback(values: list) -> list:
    """Device tensors (or plain values, or None) as Python lists/floats, with one transfer for
    the tensors of the same shape."""
    import torch

    out: list = [None] * len(values)
    groups: dict = {}
    for i, v in enumerate(values):
        if isinstance(v, torch.Tensor):
            groups.setdefault(tuple(v.shape), []).append(i)
        else:
            out[i] = v
    for idx in groups.values():
        host = torch.stack([values[i].detach().float() for i in idx]).tolist()
        for i, h in zip(idx, host, strict=True):
            out[i] = h
    return out
