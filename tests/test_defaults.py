"""One home for option defaults and their validation: every entry point accepts and refuses the
same values (a tolerance of 0 asks for exact equality; a negative one is refused everywhere)."""

import pytest

from conftest import run_cli
from convlint.analyzers import config as C
from convlint.analyzers import defaults as D
from convlint.analyzers.differential.check import DiffOptions
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.project import CheckOptions
from convlint.server.lsp import settings as S


def test_the_library_owns_the_defaults():
    assert (DiffOptions().atol, DiffOptions().rtol, DiffOptions().num_inputs) == (
        D.ATOL,
        D.RTOL,
        D.NUM_INPUTS,
    )
    o = CheckOptions([], C.Config())
    assert (o.atol, o.rtol, o.num_inputs, o.train_timeout) == (
        D.ATOL,
        D.RTOL,
        D.NUM_INPUTS,
        D.SCRIPT_TIMEOUT,
    )
    assert (S.Settings().atol, S.Settings().rtol) == (D.ATOL, D.RTOL)


@pytest.mark.parametrize("value,ok", [(0, True), (1e-3, True), (-1, False)])
def test_a_tolerance_is_judged_alike_by_the_cli_the_config_and_the_server(value, ok):
    # the language server's settings
    s, problems = S.parse({"atol": value})
    assert (s.atol == value and not problems) if ok else (s.atol == D.ATOL and problems), problems
    # the project config
    try:
        C.parse({"pairs": [{"source": "a.onnx", "target": "b.onnx", "atol": value}]})
        parsed = True
    except ConvlintError as e:
        parsed, msg = False, e.message
        assert "at least 0" in msg
    assert parsed is ok
    # the command line (argument parsing only: the models do not exist)
    p = run_cli("diff", "missing-a.onnx", "missing-b.onnx", "--atol", str(value), "--no-tvm")
    assert p.returncode == 2
    assert ("at least 0" not in p.stderr) if ok else ("at least 0" in p.stderr)


def test_a_timeout_must_be_positive_everywhere():
    for bad in (0, -5):
        with pytest.raises(ValueError):
            D.timeout(bad)
        p = run_cli("trace", "x.py", "--allow-exec", "--timeout", str(bad))
        assert p.returncode == 2 and "above 0" in p.stderr
    assert D.timeout("30") == 30.0 and D.count("3") == 3
    with pytest.raises(ValueError):
        D.count("2.5")
