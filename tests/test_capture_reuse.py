"""The check's own runs feed the localization's capture, and a leg is never run twice.

Counted by wrapping the runners' execution hooks: each sample runs once per leg (native, TVM),
the per-layer capture reuses the check's first runs, and re-checks of the same source (stage 1's
re-conversions, the repair's verification) take the source's legs from its memo. The findings
are the same as with the capture made after the verdict (the path a float target takes)."""

from collections import Counter

import numpy as np
import pytest

from conftest import MODELS
from convlint.analyzers import pipeline
from convlint.analyzers.differential.check import DiffOptions, check_pair
from convlint.analyzers.models.base import Runner, TensorSpec
from convlint.analyzers.models.keras_runner import KerasRunner
from convlint.analyzers.models.tflite_runner import TFLiteRunner
from convlint.analyzers.pipeline import PipelineOptions, check_paths

N = 5
SRC, TGT = str(MODELS / "mobilenet.keras"), str(MODELS / "mobilenet.dynint8.tflite")
PAIR = {SRC: "keras", TGT: "tflite"}


def count_calls(monkeypatch) -> Counter:
    calls: Counter = Counter()
    for cls in (KerasRunner, TFLiteRunner):
        for hook in ("_run_impl", "_intermediates_impl"):
            orig = getattr(cls, hook)

            def wrapped(self, inputs, _orig=orig, _hook=hook[1:-5]):
                # the two files of the pair; stage 1's re-conversions are other files
                if self.path in PAIR:
                    calls[f"{PAIR[self.path]}.{_hook}"] += 1
                return _orig(self, inputs)

            monkeypatch.setattr(cls, hook, wrapped)
    return calls


def summary(report) -> list:
    return sorted((f.rule, f.severity, f.layer or "") for f in report.findings)


@pytest.mark.slow
def test_capture_reuses_the_checks_runs_with_the_same_findings(monkeypatch):
    src, tgt = SRC, TGT
    opts = PipelineOptions(DiffOptions(num_inputs=N, use_tvm=False))
    calls = count_calls(monkeypatch)
    reused = check_paths(src, tgt, opts)
    assert reused.verdict == "divergent" and reused.extra["localization"]
    # Keras: one execution per sample (the first two through the per-layer model, which also
    # gives the outputs); TFLite: its default kernels once per sample for the verdict, and the
    # capture's interpreter (every tensor kept, no delegate) on the first two, during the check
    assert calls == {"keras.run": N - 2, "keras.intermediates": 2,
                     "tflite.run": N, "tflite.intermediates": 2}

    calls.clear()
    monkeypatch.setattr(pipeline, "_expects_localization", lambda target, qparams: False)
    after = check_paths(src, tgt, opts)  # the capture made after the verdict, as before
    assert calls == {"keras.run": N, "keras.intermediates": 2,
                     "tflite.run": N, "tflite.intermediates": 2}
    assert after.verdict == reused.verdict and summary(after) == summary(reused)
    assert after.extra["localization"]["culprit"] == reused.extra["localization"]["culprit"]


def test_run_capturing_reads_the_outputs_off_the_per_layer_run():
    from convlint.analyzers.models import open_model

    with open_model(str(MODELS / "mobilenet.keras")) as m:
        x = {s.name: np.random.default_rng(0).uniform(-1, 1, (1, *s.shape[1:])).astype("float32")
             for s in m.input_specs()}
        outs, inter = m.run_capturing(x)
        plain = m.run(x)
        assert list(outs) == list(plain) and len(inter) > len(outs)
        for k in plain:
            np.testing.assert_allclose(outs[k], plain[k], atol=1e-5)


class FakeTVM:
    route = "fake -> tvm"

    def __init__(self, counts):
        self.counts = counts

    def run(self, inputs):
        self.counts["tvm.run"] += 1
        return [next(iter(inputs.values())) * 2.0]


class Fake(Runner):
    format = "onnx"
    backend = "fake"

    def __init__(self, name, counts, scale=2.0):
        super().__init__(name)
        self.counts, self.scale = counts, scale

    def load(self):
        return self

    def _input_specs_impl(self):
        return [TensorSpec("x", (None, 3), "float32")]

    def _output_specs_impl(self):
        return [TensorSpec("y", (None, 3), "float32")]

    def _run_impl(self, inputs):
        self.counts["run"] += 1
        return {"y": inputs["x"] * self.scale}

    def to_tvm(self, shapes):
        self.counts["to_tvm"] += 1
        return FakeTVM(self.counts)


def test_a_source_checked_again_takes_its_legs_from_the_memo():
    src_counts, t1, t2 = Counter(), Counter(), Counter()
    source = Fake("s", src_counts)
    opts = DiffOptions(num_inputs=4)
    first = check_pair(source, Fake("t1", t1), opts)
    again = check_pair(source, Fake("t2", t2, scale=2.5), opts)  # a re-conversion's check
    assert first.verdict == "equivalent" and again.verdict == "divergent"
    assert src_counts == {"run": 4, "to_tvm": 1, "tvm.run": 4}  # not 8, 2, 8
    assert t1 == t2 == {"run": 4, "to_tvm": 1, "tvm.run": 4}
    other = check_pair(source, Fake("t3", Counter()), DiffOptions(num_inputs=4, seed=1))
    assert other.verdict == "equivalent" and src_counts["run"] == 8  # other inputs: run again
