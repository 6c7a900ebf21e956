"""The calibration samples a converter consumes, recorded inside the traced script's process.

Standard library only at import (numpy is imported when the samples are saved: a script that
quantizes has it). ``Samples`` collects what TFLite's ``representative_dataset`` yields or what an
onnxruntime ``CalibrationDataReader.get_next`` returns, on the converter's first pass only, up to
``CAP`` samples; ``save`` writes them as one ``.npz`` that ``--calibration`` reads (one array per
input, samples stacked on a new first axis; keys are the input names when the samples name them,
else ``input_0``, ``input_1``... in order).
"""

from __future__ import annotations

CAP = 1000  # samples kept; beyond this the capture says it was truncated


class Samples:
    def __init__(self):
        self.items: list = []  # [(names or None, [arrays])]
        self.truncated = False
        self.passes = 0  # how many times the converter started drawing samples

    def add(self, sample) -> None:
        if len(self.items) >= CAP:
            self.truncated = True
            return
        import numpy as np

        if isinstance(sample, dict):
            names, vals = list(sample), list(sample.values())
        elif isinstance(sample, (list, tuple)):
            names, vals = None, list(sample)
        else:
            names, vals = None, [sample]
        self.items.append((names, [np.array(v, copy=True) for v in vals]))

    def summary(self, path: str, source: str) -> dict:
        return {"path": path, "samples": len(self.items), "truncated": self.truncated,
                "from": source}


def recording_generator(gen_fn, samples: Samples):
    """A representative-dataset callable that yields what ``gen_fn()`` yields and records it the
    first time it is drawn from (TFLite may call it again, e.g. for its debugger)."""

    def gen():
        samples.passes += 1
        first = samples.passes == 1
        for s in gen_fn():
            if first:
                samples.add(s)
            yield s

    return gen


def record_reader(reader, samples: Samples) -> None:
    """Record what ``reader.get_next()`` returns (onnxruntime's calibration draws from it)."""
    orig = reader.get_next

    def get_next():
        s = orig()
        if s is not None:
            samples.add(s)
        return s

    reader.get_next = get_next


def save(samples: Samples, path: str) -> int:
    """Write the samples to ``path`` (.npz); returns how many. Samples whose arrays disagree in
    number or shape cannot be stacked: ValueError."""
    import numpy as np

    if not samples.items:
        raise ValueError("the converter drew no calibration samples")
    names, first = samples.items[0]
    keys = names if names else [f"input_{i}" for i in range(len(first))]
    cols: list = [[] for _ in keys]
    for nm, arrays in samples.items:
        if len(arrays) != len(keys) or (names and nm != names):
            raise ValueError("calibration samples differ in their inputs")
        for i, a in enumerate(arrays):
            cols[i].append(a)
    arrays: dict = {k: np.stack(c) for k, c in zip(keys, cols, strict=True)}
    np.savez(path, **arrays)
    return len(samples.items)
