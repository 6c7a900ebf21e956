"""The use-case requests (analyzers/app): defaults from analyzers/defaults.py, validation that
names the option, a JSON round trip, and the worker refusing bad job params with CL001."""

import json

import pytest

from convlint.analyzers import defaults as D
from convlint.analyzers.app import DiffRequest, TraceRequest, TrainRequest
from convlint.analyzers.errors import ConvlintError


def test_defaults_come_from_the_defaults_module():
    d = DiffRequest("a.onnx", "b.onnx")
    assert (d.atol, d.rtol, d.num_inputs, d.seed) == (D.ATOL, D.RTOL, D.NUM_INPUTS, D.SEED)
    t = TrainRequest("train.py")
    assert (t.max_epochs, t.max_steps, t.timeout) == (D.MAX_EPOCHS, D.MAX_STEPS, D.SCRIPT_TIMEOUT)
    assert TraceRequest("conv.py").timeout == D.SCRIPT_TIMEOUT


@pytest.mark.parametrize("cls,base", [(DiffRequest, {"source": "a.onnx", "target": "b.tflite"}),
                                      (TraceRequest, {"script": "conv.py"}),
                                      (TrainRequest, {"script": "train.py"})])
def test_json_round_trip(cls, base):
    req = cls.from_dict(base)
    again = cls.from_dict(json.loads(json.dumps(req.to_dict())))
    assert again == req


def test_none_means_the_default_as_an_option_not_given():
    assert DiffRequest.from_dict({"source": "a", "target": "b", "atol": None}).atol == D.ATOL


@pytest.mark.parametrize("params,expect", [
    ({"atol": -1}, "atol"), ({"rtol": "x"}, "rtol"), ({"num_inputs": 0}, "num_inputs"),
    ({"num_inputs": 2.5}, "num_inputs"), ({"seed": float("nan")}, "seed"),
    ({"mean": "abc"}, "mean"), ({"colour": 1}, "unknown option"),
])
def test_bad_values_are_user_errors_naming_the_option(params, expect):
    with pytest.raises(ConvlintError) as e:
        DiffRequest.from_dict({"source": "a", "target": "b", **params})
    assert expect in e.value.message and e.value.rule == "CL001"


def test_a_missing_required_field_is_a_user_error():
    with pytest.raises(ConvlintError):
        DiffRequest.from_dict({"source": "a"})
    with pytest.raises(ConvlintError):
        TrainRequest.from_dict({"script": "t.py", "timeout": 0})


def test_the_worker_refuses_bad_params_with_the_rule():
    from convlint.server.lsp import worker

    with pytest.raises(ConvlintError) as e:
        worker._check_pair({"source": "a", "target": "b", "atol": -1}, lambda m: None)
    assert e.value.rule == "CL001"
