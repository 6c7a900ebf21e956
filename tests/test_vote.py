"""The four-execution vote and the noise baseline, with in-memory fake runners."""

import numpy as np

from convlint.analyzers.differential.check import DiffOptions, check_pair
from convlint.analyzers.errors import StepFailed
from convlint.analyzers.models.base import Runner, TensorSpec

W = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)


class FakeTVM:
    route = "fake -> tvm"

    def __init__(self, fn):
        self.fn = fn

    def run(self, inputs):
        return [self.fn(next(iter(inputs.values())))]


class Fake(Runner):
    """A model computing ``native(x)`` natively and ``tvm(x)`` through 'TVM'."""

    format = "onnx"
    backend = "fake-runtime"

    def __init__(self, name, native, tvm=None, tvm_error=None, run_error=None):
        super().__init__(name)
        self.native, self.tvm, self.tvm_error, self.run_error = (
            native,
            tvm or native,
            tvm_error,
            run_error,
        )

    def load(self):
        return self

    def _input_specs_impl(self):
        return [TensorSpec("x", (None, 6), "float32")]

    def _output_specs_impl(self):
        return [TensorSpec("y", (None, 4), "float32")]

    def _run_impl(self, inputs):
        if self.run_error:
            raise RuntimeError(self.run_error)
        return {"y": self.native(inputs["x"])}

    def to_tvm(self, shapes):
        if self.tvm_error:
            raise StepFailed("compile", "tvm", self.tvm_error, op="WEIRD_OP")
        return FakeTVM(self.tvm)


def good(x):
    return x @ W


def off(x):
    return x @ W + 0.05


def noisy(x):
    return x @ W + 3e-5


OPTS = DiffOptions(num_inputs=4)


def rules(report):
    return [f.rule for f in report.findings]


def test_clean_pair_is_equivalent_with_no_finding():
    r = check_pair(Fake("s", good), Fake("t", good), OPTS)
    assert r.verdict == "equivalent" and r.findings == () and r.exit_code == 0


def test_converter_fault_is_divergent_and_confirmed_by_tvm():
    r = check_pair(Fake("s", good), Fake("t", off), OPTS)
    assert r.verdict == "divergent" and r.exit_code == 1
    (f,) = [f for f in r.findings if f.rule == "CL100"]
    assert f.evidence["confirmed_by_tvm"] is True and f.severity == "error"


def test_tvm_fault_on_one_model_is_a_runtime_warning_not_a_divergence():
    r = check_pair(Fake("s", good), Fake("t", good, tvm=off), OPTS)
    assert r.verdict == "equivalent" and r.exit_code == 0
    (f,) = r.findings
    assert f.rule == "CL010" and f.severity == "warning" and f.evidence["model"] == "target"


def test_target_native_runtime_is_the_odd_one_out():
    # the target file is faithful (TVM runs it like the source) but its own runtime deviates
    r = check_pair(Fake("s", good), Fake("t", off, tvm=good), OPTS)
    assert r.verdict == "divergent"
    assert "CL100" not in rules(r)
    (f,) = [f for f in r.findings if f.rule == "CL010"]
    assert f.severity == "error" and f.stage == "runtime" and f.evidence["model"] == "target"


def test_measured_noise_widens_atol_and_says_so():
    # TVM differs from native by 3e-5 on both models; the conversion differs by 1e-4 + a bit
    def conv(x):
        return x @ W + 1.2e-4

    r = check_pair(Fake("s", good, tvm=noisy), Fake("t", conv, tvm=noisy), OPTS)
    assert r.extra["tolerance"]["noise_max_abs"] > 2.9e-5
    assert "CL012" in rules(r)
    assert r.extra["tolerance"]["atol_effective"] > 1e-4


def test_tvm_unavailable_is_info_and_the_check_still_runs():
    r = check_pair(Fake("s", good), Fake("t", good, tvm_error="no converter for WEIRD_OP"), OPTS)
    assert r.verdict == "equivalent" and rules(r) == ["CL011"] and r.findings[0].severity == "info"


def test_native_run_failure_is_a_crash_naming_the_model():
    r = check_pair(Fake("s", good), Fake("t", good, run_error="kernel exploded"), OPTS)
    assert r.verdict == "crash" and r.exit_code == 1
    (f,) = r.findings
    assert f.rule == "CL003" and f.evidence["model"] == "target" and "kernel exploded" in f.message


def test_an_output_of_another_shape_is_an_output_shape_finding():
    class Wider(Fake):
        def _output_specs_impl(self):
            return [TensorSpec("y", (None, 5), "float32")]

    w5 = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    r = check_pair(Fake("s", good), Wider("t", lambda x: x @ w5), OPTS)
    assert r.verdict == "divergent" and r.exit_code == 1
    (f,) = r.findings
    assert f.rule == "CL101" and "(1, 4)" in f.message and "(1, 5)" in f.message
    # its clean twin: the same shapes, the same function
    assert check_pair(Fake("s", good), Fake("t", good), OPTS).findings == ()


def test_tvm_agreeing_with_the_target_never_blames_the_source_framework():
    # S' agrees with T: the source in its own framework is still the reference
    r = check_pair(Fake("s", good, tvm=off), Fake("t", off), OPTS)
    assert r.verdict == "divergent"
    assert not [f for f in r.findings if f.rule == "CL010" and f.severity == "error"]
    (f,) = [f for f in r.findings if f.rule == "CL100"]
    assert f.evidence["vote"]["odd_one_out"] == "source"


class Tf2onnxTarget(Fake):
    def _metadata_impl(self):
        return {"producer_name": "tf2onnx", "converter": "tf2onnx"}


class SharedRoute:
    route = "tf2onnx(opset 17, float) -> relax.frontend.onnx"

    def __init__(self, fn):
        self.fn = fn

    def run(self, inputs):
        return [self.fn(next(iter(inputs.values())))]


class KerasLike(Fake):
    format = "keras"

    def to_tvm(self, shapes):
        assert self.tvm_avoid == frozenset({"tf2onnx"})  # told which converter to avoid
        return SharedRoute(self.tvm)


def test_a_source_route_through_the_targets_converter_is_not_independent():
    # the only route shares tf2onnx with the target and inherits its fault
    r = check_pair(KerasLike("s", good, tvm=off), Tf2onnxTarget("t", off), OPTS)
    assert r.verdict == "divergent"
    assert [f.rule for f in r.findings if f.severity == "error"] == ["CL100"]
    (path,) = [f for f in r.findings if f.rule == "CL013"]
    assert path.evidence["shared_with_target"] == ["tf2onnx"]
    assert r.extra["runs"]["source"]["tvm_independent"] is False
    assert r.extra["runs"]["source"]["tvm_chain"] == [
        "tf2onnx(opset 17, float)",
        "relax.frontend.onnx",
    ]
    # its clean twin: nothing but the route note
    clean = check_pair(KerasLike("s", good), Tf2onnxTarget("t", good), OPTS)
    assert clean.verdict == "equivalent" and [f.rule for f in clean.findings] == ["CL013"]


def test_routes_avoid_the_targets_converter_when_another_exists():
    from convlint.analyzers.models.tf_common import first_working

    built = first_working([("tf2onnx(opset 17) -> relax.frontend.onnx", lambda: "a"),
                           ("TFLiteConverter(float) -> relax.frontend.tflite", lambda: "b")],
                          avoid=frozenset({"tf2onnx"}))
    assert built() == ("TFLiteConverter(float) -> relax.frontend.tflite", "b")
