"""The training trace: what the probes record, shared by the Keras and PyTorch probes.

Standard library only. A probe calls ``Recorder.layer(...)`` once per layer (its name, type,
activation and the script line that built it), then per recorded step ``begin_step``, the
per-layer statistics, and ``end_step`` with the loss and metrics. Only summary statistics are
kept (see ``SUMMARY``); never whole tensors. With a ``path`` every step is appended to a JSON
lines file as it ends, so a run that is killed (timeout, crash) still leaves what it saw.

Trace layout (one JSON object per line): ``{"meta": {...}}`` first and again whenever it
changes, ``{"layer": {...}}`` per layer, ``{"step": {...}}`` per recorded step, and
``{"end": {...}}`` last.
"""

from __future__ import annotations

import json
import math
import os
import traceback

# the statistics a probe computes where the tensor lives (keys of a stats dict)
SUMMARY = ("mean", "std", "min", "max", "absmax", "norm", "frac_zero", "frac_nonfinite", "frac_sat",
           "frac_dead", "n")


class StopTraining(BaseException):  # noqa: N818 - a control-flow signal, not an error
    """Raised (or signalled) by a probe when training should end: a certain fault, or the
    step limit. BaseException, so a user's ``except Exception`` does not swallow it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def creation_site(script: str | None, skip: tuple = ()) -> dict | None:
    """The line of the user's script on the current stack (innermost first), else the
    innermost frame outside site-packages and convlint: where a layer is being built."""
    frames = traceback.extract_stack()[:-1]
    if script:
        for fr in reversed(frames):
            if os.path.abspath(fr.filename) == script:
                return {"file": script, "line": fr.lineno}
    here = os.path.dirname(os.path.abspath(__file__))
    for fr in reversed(frames):
        fn = os.path.abspath(fr.filename)
        if (
            fn.startswith(here)
            or "site-packages" in fn
            or fn.startswith("<")
            or any(s in fn for s in skip)
        ):
            continue
        return {"file": fn, "line": fr.lineno}
    return None


# Fused statistics: a probe reduces all of a step's tensors at once (one concatenation, one
# segment reduction per column) into rows of these raw columns, kept on the device and read back
# in batches; ``decode_row`` turns one row into a stats dict (the keys of SUMMARY).
RAW = (
    "n",
    "n_nonfinite",
    "sum",
    "sumsq",
    "n_nonzero",
    "n_sat_sigmoid",
    "n_sat_tanh",
    "min",
    "max",
    "dead",
)


def decode_row(row, act: str | None = None) -> dict:
    """A stats dict from one row of RAW columns (``n_nonzero``, ``n_sat_*`` and ``dead``, the
    fraction of dead units, are < 0 when not measured). Statistics are over the finite values,
    as the per-tensor ones were; a tensor with non-finite values keeps only their fraction."""
    n, nfin = int(row[0]), int(row[0]) - int(row[1])
    if n == 0:
        return {"n": 0}
    if nfin == 0:
        return {"n": n, "frac_nonfinite": 1.0}
    s, ss = float(row[2]), float(row[3])
    if nfin < n or not (math.isfinite(s) and math.isfinite(ss)):  # sums over non-finite values
        return {"n": n, "frac_nonfinite": (n - nfin) / n}
    mean = s / nfin
    mn, mx = float(row[7]), float(row[8])
    d = {
        "n": n,
        "mean": mean,
        "std": math.sqrt(max(ss / nfin - mean * mean, 0.0)),
        "min": mn,
        "max": mx,
        "absmax": max(abs(mn), abs(mx)),
        "norm": math.sqrt(max(ss, 0.0)),
        "frac_nonfinite": (n - nfin) / n,
    }
    if float(row[4]) >= 0:  # zeros are counted where they mean something (probes may skip them)
        d["frac_zero"] = (n - float(row[4])) / nfin
    if act == "sigmoid" and float(row[5]) >= 0:
        d["frac_sat"] = float(row[5]) / nfin
    elif act == "tanh" and float(row[6]) >= 0:
        d["frac_sat"] = float(row[6]) / nfin
    elif act in ("relu", "leaky_relu") and float(row[9]) >= 0:
        d["frac_dead"] = float(row[9])
    return d


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


class Recorder:
    """Collects the trace; writes it to ``path`` (JSON lines) as it goes when one is given."""

    def __init__(
        self,
        path: str | None = None,
        *,
        every: int | None = 1,
        max_steps: int | None = None,
        stop_on_fault: bool = True,
        extend_to: int | None = None,
    ):
        self.path = path
        self.extend_to = extend_to  # the step limit may grow to this while the run is undecided
        self.auto_every = every is None  # a probe may choose: about TARGET_RECORDED steps per run
        self.every = 1 if every is None else max(1, int(every))
        self.max_steps = max_steps
        self.stop_on_fault = stop_on_fault
        self.meta: dict = {}
        self.layers: dict[str, dict] = {}
        self.steps: list[dict] = []
        self.step = 0  # optimizer steps seen
        self.current: dict | None = None
        self.stopped: str | None = None
        self.flushers: list = []  # probes' read-backs of batched steps, called by flush()
        self._fh = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115 - kept open for the run

    # -- writing ----------------------------------------------------------------------------------
    def _write(self, obj: dict) -> None:
        if self._fh is not None:
            self._fh.write(json.dumps(obj, default=_default) + "\n")
            self._fh.flush()

    def set_meta(self, **kv) -> None:
        changed = {k: v for k, v in kv.items() if self.meta.get(k) != v}
        if changed:
            self.meta.update(changed)
            self._write({"meta": changed})

    def layer(self, name: str, **info) -> None:
        """Declare a layer (in forward order): type, activation, site, params..."""
        if name in self.layers:
            new = {k: v for k, v in info.items() if v is not None and self.layers[name].get(k) != v}
            if new:
                self.layers[name].update(new)
                self._write({"layer": {"name": name, **new}})
            return
        d = {"name": name, "index": len(self.layers), **info}
        self.layers[name] = d
        self._write({"layer": d})

    # -- steps ------------------------------------------------------------------------------------
    TARGET_RECORDED = 120

    def plan(self, total_steps: int | None) -> None:
        """Knowing how many steps the run will take, record about TARGET_RECORDED of them
        (when the user did not choose ``every``)."""
        if self.auto_every and total_steps:
            if self.max_steps:
                total_steps = min(total_steps, self.max_steps)
            self.every = max(1, total_steps // self.TARGET_RECORDED)

    def wants(self, step: int | None = None) -> bool:
        """Record this step? Every ``every``-th, and always the first few."""
        s = self.step if step is None else step
        return s < 3 or s % self.every == 0

    def begin_step(self, epoch: int | None = None) -> dict:
        self.current = {"step": self.step, "epoch": epoch, "layers": {}}
        return self.current

    def put(self, layer: str, kind: str, stats: dict | None) -> None:
        """Per-layer statistics of one kind: ``pre`` (before activation), ``post`` (after),
        ``w`` (weights), ``dw`` (the update), ``gw`` (weight gradient), ``gout`` (gradient of
        the layer's output)."""
        if stats is None or self.current is None:
            return
        self.current["layers"].setdefault(layer, {})[kind] = stats

    def end_step(self, loss=None, metrics: dict | None = None) -> str | None:
        """Close the step; returns a reason to stop (a certain fault or the step limit)."""
        cur = self.current or {"step": self.step, "epoch": None, "layers": {}}
        cur["loss"] = _num(loss)
        cur["metrics"] = {k: _num(v) for k, v in (metrics or {}).items()}
        self.steps.append(cur)
        self._write({"step": cur})
        self.current = None
        self.step += 1
        reason = self.certain_fault(cur) if self.stop_on_fault else None
        if (
            reason is None
            and self.max_steps is not None
            and self.step >= self.max_steps
            and not self._extend()
        ):
            reason = f"step limit ({self.max_steps}) reached"
        if reason:
            self.stopped = reason
        return reason

    def add_step(self, cur: dict) -> str | None:
        """A step recorded earlier and read back now (batched probes): ``cur`` carries its own
        ``step`` number, already counted with ``count_step``. Returns a reason to stop (a certain
        fault), as end_step; the exact step of the fault is kept."""
        cur.setdefault("layers", {})
        cur["loss"] = _num(cur.get("loss"))
        cur["metrics"] = {k: _num(v) for k, v in (cur.get("metrics") or {}).items()}
        self.steps.append(cur)
        self._write({"step": cur})
        reason = self.certain_fault(cur) if self.stop_on_fault else None
        if reason and not self.stopped:
            self.stopped = reason
        return reason

    def flush(self) -> None:
        """Read back what the probes still hold on the device (batched steps)."""
        for fn in list(self.flushers):
            fn()

    def count_step(self) -> str | None:
        """An optimizer step that was not recorded; returns a reason to stop, as end_step."""
        self.step += 1
        if self.max_steps is not None and self.step >= self.max_steps and not self._extend():
            self.stopped = f"step limit ({self.max_steps}) reached"
            return self.stopped
        return None

    def _extend(self) -> bool:
        """At the step limit: watch half as long again (up to ``extend_to``) while the run is
        undecided, i.e. its recorded loss still falls by more than 3% from one quarter of the
        run to the next and its accuracy (where known) is below 0.95."""
        if not self.extend_to or self.max_steps is None or self.max_steps >= self.extend_to:
            return False
        losses = [s["loss"] for s in self.steps if finite(s.get("loss"))]
        q = len(losses) // 4
        if q < 3:
            return False
        prev, last = sum(losses[-2 * q:-q]) / q, sum(losses[-q:]) / q
        accs = [
            s["metrics"].get("accuracy")
            for s in self.steps[-q:]
            if finite(s["metrics"].get("accuracy"))
        ]
        if not prev > 0 or (prev - last) / prev <= 0.03 or (accs and sum(accs) / len(accs) >= 0.95):
            return False
        self.max_steps = min(self.extend_to, self.max_steps + max(100, self.max_steps // 2))
        self.set_meta(extended_to=self.max_steps)
        return True

    @staticmethod
    def certain_fault(cur: dict) -> str | None:
        """A fault that more training cannot undo: a non-finite loss, or non-finite weights."""
        if cur.get("loss") is not None and not finite(cur["loss"]):
            return "the loss is not finite"
        for name, d in cur["layers"].items():
            w = d.get("w")
            if w and w.get("frac_nonfinite", 0) > 0:
                return f"the weights of {name} are not finite"
        return None

    def close(self, **end) -> None:
        self.flush()
        self._write({"end": {"steps": self.step, "stopped": self.stopped, **end}})
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def trace(self) -> dict:
        """The whole trace as one dict (the form the rules read)."""
        self.flush()
        return {
            "meta": dict(self.meta),
            "layers": sorted(self.layers.values(), key=lambda d: d["index"]),
            "steps": list(self.steps),
            "end": {"steps": self.step, "stopped": self.stopped},
        }


def read_trace(path: str) -> dict:
    """A trace from its JSON lines file; a truncated last line (a killed run) is skipped."""
    meta: dict = {}
    layers: dict = {}
    steps: list = []
    end: dict = {}
    try:
        fh = open(path, encoding="utf-8")  # noqa: SIM115
    except OSError:
        return {"meta": meta, "layers": [], "steps": steps, "end": end}
    with fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "meta" in obj:
                meta.update(obj["meta"])
            elif "layer" in obj:
                d = obj["layer"]
                layers.setdefault(d["name"], {}).update(d)
            elif "step" in obj:
                steps.append(obj["step"])
            elif "end" in obj:
                end = obj["end"]
    return {"meta": meta, "layers": sorted(layers.values(), key=lambda d: d.get("index", 0)),
            "steps": steps, "end": end}


def _num(v):
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def _default(o):  # values json cannot write itself (numpy scalars, tensors): as floats, else repr
    try:
        return float(o)
    except (TypeError, ValueError):
        return repr(o)
