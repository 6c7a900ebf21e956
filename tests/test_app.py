"""The use-case requests (analyzers/app): defaults from analyzers/defaults.py, validation that
names the option, a JSON round trip, and the worker refusing bad job params with CL001."""

import json

import pytest

from convlint.analyzers import defaults as D
from convlint.analyzers.app import CheckRequest, DiffRequest, TraceRequest, TrainRequest
from convlint.analyzers.app.progress import expected_stages, stage_of, staged
from convlint.analyzers.errors import ConvlintError


def test_defaults_come_from_the_defaults_module():
    d = DiffRequest("a.onnx", "b.onnx")
    assert (d.atol, d.rtol, d.num_inputs, d.seed) == (D.ATOL, D.RTOL, D.NUM_INPUTS, D.SEED)
    t = TrainRequest("train.py")
    assert (t.max_epochs, t.max_steps, t.timeout) == (D.MAX_EPOCHS, D.MAX_STEPS, D.SCRIPT_TIMEOUT)
    assert TraceRequest("conv.py").timeout == D.SCRIPT_TIMEOUT


@pytest.mark.parametrize("cls,base", [(DiffRequest, {"source": "a.onnx", "target": "b.tflite"}),
                                      (TraceRequest, {"script": "conv.py"}),
                                      (TrainRequest, {"script": "train.py"}),
                                      (CheckRequest, {"paths": ["src"], "select": ["CL4"]})])
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


def test_check_request_owns_its_defaults_and_the_config_fills_what_is_unset(tmp_path):
    r = CheckRequest.from_dict({"paths": [str(tmp_path)], "jobs": None, "train": None})
    assert (r.jobs, r.use_cache, r.use_tvm, r.train, r.allow_exec) == (1, True, True, None, None)
    (tmp_path / "convlint.toml").write_text('train = true\nallow-exec = true\nignore = ["CL411"]\n')
    o = r.options()
    assert o.train is True and o.allow_exec is True and o.config.ignore == ("CL411",)
    # the request's values over the config's
    o = CheckRequest((str(tmp_path),), train=False, ignore=("CL420",), jobs=3).options()
    assert o.train is False and o.config.ignore == ("CL420",) and o.jobs == 3
    with pytest.raises(ConvlintError, match="jobs"):
        CheckRequest(jobs=0)


def test_the_cli_restates_no_default_of_check():
    """`convlint check`'s argparse defaults are None: the request (or the config) owns them."""
    from convlint.server.cli import build_parser

    args = build_parser().parse_args(["check"])
    assert args.jobs is None and args.train is None and args.allow_exec is None


def test_diff_progress_advances_through_known_stages():
    req = DiffRequest("a.onnx", "b.tflite", repair=True)
    total = expected_stages(True, True, True)
    assert total == 11
    seen = []
    cb = staged(seen.append, req)
    for msg in [
        "source: loading a.onnx",
        "target: loading b.tflite",
        "source: running 32 inputs on onnxruntime",
        "source: compiling through TVM",
        "source: running 32 inputs on TVM",
        "some other note",
        "source: running 32 inputs on TVM",
    ]:
        cb(msg)
    assert [m.done for m in seen] == [1, 2, 3, 4, 5, 5, 5]
    assert all(m.total == total for m in seen) and str(seen[0]) == "source: loading a.onnx"
    assert stage_of("localizing: aligning the graphs") == "localizing:aligning"
    assert stage_of("no stage here") is None and staged(None, req) is None
    assert expected_stages(False, False, False) == 4
