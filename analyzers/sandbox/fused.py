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


def torch_rows(tensors: list, acts: list, out=None):
    """One row of RAW columns per tensor, computed in a fixed number of torch ops whatever the
    number of tensors (one concatenation and segment reductions). ``acts[i]`` names the
    activation whose saturation/dead units row i measures (or None). Written into ``out`` (a
    preallocated [len(tensors), NCOL] slot) when given."""
    import torch

    with torch.no_grad():
        flat = [t.detach().reshape(-1) for t in tensors]
        lengths = [f.numel() for f in flat]
        x = torch.cat(flat).float()
        fin = torch.isfinite(x)
        xz = torch.where(fin, x, 0.0)
        lens = torch.tensor(lengths)
        cols = [fin.float(), xz, xz * xz, (x == 0).float()]
        if any(a in ("sigmoid", "tanh") for a in acts):
            cols += [(fin & ((xz < 0.01) | (xz > 0.99))).float(), (xz.abs() > 0.99).float()]
        else:
            z = torch.zeros_like(xz)
            cols += [z, z]
        sums = torch.segment_reduce(torch.stack(cols, 1), "sum", lengths=lens, axis=0)
        mn = torch.segment_reduce(torch.where(fin, x, float("inf")), "min", lengths=lens)
        mx = torch.segment_reduce(torch.where(fin, x, float("-inf")), "max", lengths=lens)
        dead = torch.full((len(tensors),), -1.0)
        for i, (t, a) in enumerate(zip(tensors, acts, strict=True)):
            if a in ("relu", "leaky_relu") and t.dim() >= 2:  # a unit is dead when never positive
                alive = (t.detach() > 0).movedim(1, 0).reshape(t.shape[1], -1).any(dim=1)
                dead[i] = 1.0 - alive.float().mean()
        parts = [lens.float()[:, None], sums, mn[:, None], mx[:, None], dead[:, None]]
        if out is not None:
            return torch.cat(parts, 1, out=out)
        return torch.cat(parts, 1)


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
