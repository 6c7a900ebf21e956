"""The incremental re-parse of an edited script (analyzers/scripts/reparse.py) gives exactly what
``ast.parse`` of the whole text gives: the same tree, lines and columns, and the same
SyntaxErrors."""

from __future__ import annotations

import ast
import random

import pytest

from conftest import ROOT
from convlint.analyzers.scripts import reparse
from convlint.analyzers.scripts.check import analyze_source

# the shipped conversion scripts, and two long modules with every kind of statement
SCRIPTS = sorted((ROOT / "fixtures" / "scripts").glob("*.py")) + \
    [ROOT / "analyzers" / "scripts" / n for n in ("facts.py", "edits.py")]

# lines an edit may insert: ordinary code, and every way a line can tie itself to its neighbours
POOL = [
    "x = 1",
    "y = f(x)",
    "",
    "# a comment",
    "    z = 2",
    "        w = 3",
    "@decorator",
    "def g():",
    "class C:",
    "    pass",
    "else:",
    "elif x:",
    "except ValueError:",
    "finally:",
    "if x:",
    "for i in y:",
    "x = (",
    ")",
    "]",
    "x = [1,",
    '"""',
    "'''",
    'doc = """',
    "x = 1; y = 2",
    "a = 1; b = (",
    "x = 1 + \\",
    "    return x",
    "try:",
    "with open(p) as fh:",
    "    @property",
    "match x:",
    "    case 1:",
    "converter.optimizations = [tf.lite.Optimize.DEFAULT]",
    "model.eval()",
    "\tx = 1",
    "x = 'é'  # ünïcode",
    "lambda: (yield)",
    "async def h():",
    "    await g()",
    "\f",
    "x = 1\r",
]


@pytest.fixture(autouse=True)
def _kept():
    reparse.keep(8)  # as the language server does; convlint check keeps none
    yield
    reparse.keep(0)


def test_nothing_is_kept_by_default():
    reparse.keep(0)
    text = "x = 1\n"
    assert reparse.parse(text, "/virtual/none.py") is not reparse.parse(text, "/virtual/none.py")


def _dump(tree) -> str:
    return ast.dump(tree, include_attributes=True)


def _edit(rng: random.Random, lines: list) -> list:
    lines = list(lines)
    op = rng.randrange(7)
    i = rng.randrange(len(lines) + 1)
    if op == 0 and lines:  # delete a line
        del lines[min(i, len(lines) - 1)]
    elif op == 1:  # insert one
        lines.insert(i, rng.choice(POOL))
    elif op == 2 and lines:  # type in a line (no line added)
        j = min(i, len(lines) - 1)
        s = lines[j]
        k = rng.randrange(len(s) + 1)
        lines[j] = s[:k] + rng.choice(["x", " ", "(", ")", ":", "'", "#", "1", "\\", ""]) + s[k:]
    elif op == 3 and lines:  # delete a character
        j = min(i, len(lines) - 1)
        s = lines[j]
        if s:
            k = rng.randrange(len(s))
            lines[j] = s[:k] + s[k + 1:]
    elif op == 4 and lines:  # replace a line
        lines[min(i, len(lines) - 1)] = rng.choice(POOL)
    elif op == 5 and lines:  # indent or dedent a line
        j = min(i, len(lines) - 1)
        lines[j] = "    " + lines[j] if rng.random() < 0.5 else lines[j].removeprefix("    ")
    elif op == 6 and len(lines) > 3:  # move a block
        a = rng.randrange(len(lines) - 2)
        block = lines[a:a + rng.randrange(1, 4)]
        del lines[a:a + len(block)]
        lines[rng.randrange(len(lines) + 1):0] = block
    return lines


def _check(text: str, path: str) -> str:
    try:
        want = _dump(ast.parse(text, filename=path))
    except SyntaxError as e:
        with pytest.raises(SyntaxError) as got:
            reparse.parse(text, path)
        assert (got.value.msg, got.value.lineno, got.value.offset) == (e.msg, e.lineno, e.offset)
        return "error"
    assert _dump(reparse.parse(text, path)) == want, text
    return "ok"


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_random_edits_reparse_as_a_full_parse(script):
    rng = random.Random(script.name)
    path = f"/virtual/{script.name}"
    reparse.forget(path)
    base = script.read_text().split("\n")
    outcomes = []
    # chains of edits from the original, each through good and broken states
    for _chain in range(4):
        lines = good = base
        _check("\n".join(lines), path)
        for _ in range(30):
            lines = _edit(rng, lines)
            outcomes.append(_check("\n".join(lines), path))
            if outcomes[-1] == "ok":
                good = lines
            elif rng.random() < 0.7:  # the user mends it: back to the last text that parsed
                lines = good
                outcomes.append(_check("\n".join(lines), path))
    assert outcomes.count("ok") > 40 and outcomes.count("error") > 15  # both kinds were exercised


def test_it_reuses_untouched_statements_and_reparses_only_the_edited_ones():
    path = "/virtual/reuse.py"
    reparse.forget(path)
    text = "import a\n\n\ndef f():\n    return 1\n\n\nx = f()\ny = 2\n"
    t1 = reparse.parse(text, path)
    t2 = reparse.parse(text.replace("return 1", "return 22"), path)  # typing in a line
    assert t2.body[0] is t1.body[0] and t2.body[2] is t1.body[2] and t2.body[3] is t1.body[3]
    assert t2.body[1] is not t1.body[1] and t2.body[1].body[0].value.value == 22
    t3 = reparse.parse(
        text.replace("return 22", "return 1").replace("import a\n", "import a\nimport b\n"), path
    )
    assert t3.body[0] is t2.body[0] and t3.body[-1].lineno == 10  # a line added: what follows moved
    # unchanged text
    assert reparse.parse(text.replace("import a\n", "import a\nimport b\n"), path) is t3


def test_a_script_with_lone_carriage_returns_is_parsed_whole():
    path = "/virtual/cr.py"
    reparse.forget(path)
    text = "x = 1\ry = 2\r"
    assert _dump(reparse.parse(text, path)) == _dump(ast.parse(text))
    assert _dump(reparse.parse(text + "z = 3\r", path)) == _dump(ast.parse(text + "z = 3\r"))


def test_analysis_after_edits_equals_analysis_from_scratch():
    """The rules see the same facts: findings after a chain of edits equal those of a fresh
    parse."""
    src = (ROOT / "fixtures" / "scripts" / "tflite_optimize.py").read_text()
    path = "/virtual/analysis.py"
    reparse.forget(path)
    rng = random.Random(7)
    lines = src.split("\n")
    for _ in range(40):
        lines = _edit(rng, lines)
        text = "\n".join(lines)
        incremental = analyze_source(text, path)
        reparse.forget(path)
        fresh = analyze_source(text, path)
        assert [(f.rule, f.location, f.message) for f in incremental.findings] == \
               [(f.rule, f.location, f.message) for f in fresh.findings]
