"""Static script rules: every faulty fixture script raises its rule on the right line, its clean
twin raises nothing, and each offered fix, applied, parses and clears the finding."""

from __future__ import annotations

import json
import time
import zipfile

import pytest

from conftest import ROOT, run_cli
from convlint.analyzers.scripts import analyze_file, analyze_source
from convlint.analyzers.scripts.edits import TextEdit, apply

SCRIPTS = ROOT / "fixtures" / "scripts"

# faulty script -> the (rule, line) findings it must raise, and nothing else
EXPECTED = {
    "tflite_optimize.py": [("CL411", 15)],
    "tflite_float16.py": [("CL412", 7)],
    "tflite_flags.py": [("CL470", 8), ("CL471", 9), ("CL413", 16), ("CL414", 17), ("CL414", 18),
                        ("CL415", 19)],
    "tf2onnx_opset.py": [("CL420", 14)],
    "tf2onnx_gelu.py": [("CL421", 10)],
    "torch_training.py": [("CL430", 17)],
    "torch_not_eval.py": [("CL431", 19), ("CL432", 19)],
    "torch_opset.py": [("CL420", 7)],
    "layout.py": [("CL440", 12)],
    "preprocessing.py": [("CL441", 12)],
    "bn_port.py": [("CL442", 8)],
    "convert_gelu.sh": [("CL421", 4)],
    "calib_few.py": [("CL470", 16)],
    "calib_random.py": [("CL471", 10)],
    "depthwise_per_tensor.py": [("CL472", 22)],
}


def _twin(name: str) -> str:
    stem, ext = name.rsplit(".", 1)
    return f"{stem}.clean.{ext}"


def test_every_fixture_script_is_covered():
    faulty = {p.name for p in SCRIPTS.iterdir() if ".clean." not in p.name}
    assert faulty == set(EXPECTED)
    assert all((SCRIPTS / _twin(n)).is_file() for n in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_faulty_script_raises_its_rules_on_the_right_lines(name):
    r = analyze_file(str(SCRIPTS / name))
    got = sorted((f.rule, f.location.line) for f in r.findings)
    assert got == sorted(EXPECTED[name]), [f.message for f in r.findings]
    assert r.verdict == "issues"
    for f in r.findings:
        assert f.location.file.endswith(name) and f.location.column is not None
        assert f.location.end_line >= f.location.line


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_clean_twin_raises_nothing(name):
    r = analyze_file(str(SCRIPTS / _twin(name)))
    assert r.findings == () and r.verdict == "clean"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixes_apply_and_clear_their_finding(name):
    path = SCRIPTS / name
    text = path.read_text()
    r = analyze_source(text, str(path))
    for f in r.findings:
        fixes = ([f.repair] if f.repair else []) + f.evidence.get("fixes", [])
        for fix in fixes:
            edits = fix.edits if hasattr(fix, "edits") else fix["edits"]
            new = apply(text, [TextEdit.from_dict(e) for e in edits])
            after = analyze_source(new, str(path))
            assert (f.rule, f.location.line) not in {
                (g.rule, g.location.line) for g in after.findings
            }
            assert f.rule not in {
                g.rule for g in after.findings if g.location.line == f.location.line
            }


def test_fix_texts_are_the_expected_rewrites():
    text = (SCRIPTS / "tflite_optimize.py").read_text()
    r = analyze_source(text, "tflite_optimize.py")
    new = apply(text, [TextEdit.from_dict(e) for e in r.findings[0].repair.to_dict()["edits"]])
    assert "optimizations" not in new and new.count("\n") == text.count("\n") - 1
    alt = r.findings[0].evidence["fixes"][0]
    new = apply(text, [TextEdit.from_dict(e) for e in alt["edits"]])
    assert "converter.target_spec.supported_types = [tf.float16]\n" in new
    text = (SCRIPTS / "tf2onnx_opset.py").read_text()
    f = analyze_source(text, "x.py").findings[0]
    assert "opset=13" in apply(text, [TextEdit.from_dict(e) for e in f.repair.edits])
    text = (SCRIPTS / "torch_training.py").read_text()
    f = analyze_source(text, "x.py").findings[0]
    new = apply(text, [TextEdit.from_dict(e) for e in f.repair.edits])
    assert 'torch.onnx.export(model, (dummy,), "model.onnx", dynamo=False)' in new


def test_edits_refuse_to_break_a_script():
    with pytest.raises(ValueError):
        apply("if x:\n    y = 1\n", [TextEdit(2, 0, 3, 0, "")])


def test_shell_opset_from_a_keras_archive(tmp_path):
    cfg = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "UpSampling2D", "config": {"interpolation": "bilinear", "size": [2, 2]}}]}}
    with zipfile.ZipFile(tmp_path / "up.keras", "w") as z:
        z.writestr("config.json", json.dumps(cfg))
    sh = tmp_path / "convert.sh"
    sh.write_text("python3 -m tf2onnx.convert --keras up.keras --opset=9 --output up.onnx\n")
    r = analyze_file(str(sh))
    assert [(f.rule, f.location.line) for f in r.findings] == [("CL420", 1)]
    e = r.findings[0].repair.edits[0]
    assert sh.read_text()[e["start"]["column"]:e["end"]["column"]] == "9"
    sh.write_text("python3 -m tf2onnx.convert --keras up.keras --opset 13 --output up.onnx\n")
    assert analyze_file(str(sh)).findings == ()


def test_syntax_error_is_a_finding_not_a_traceback(tmp_path):
    p = tmp_path / "bad.py"
    p.write_text("import tensorflow as tf\nconverter = (\n")
    r = analyze_file(str(p))
    assert r.verdict == "error" and r.findings[0].rule == "CL450" and r.exit_code == 2


def test_unicode_columns_are_characters():
    text = 'import tensorflow as tf\nc = tf.lite.TFLiteConverter.from_keras_model(m)\n' \
           's = "é"; c.optimizations = [tf.lite.Optimize.DEFAULT]\nb = c.convert()\n'
    f = analyze_source(text, "u.py").findings[0]
    assert f.rule == "CL411" and f.location.column == 9  # 10 in UTF-8 bytes


def test_static_analysis_imports_no_framework_and_is_fast():
    code = (
        "import sys, time; from convlint.analyzers.scripts import analyze_file;"
        f"analyze_file({str(SCRIPTS / 'torch_not_eval.py')!r});"
        "t = time.perf_counter(); analyze_file("
        + repr(str(SCRIPTS / "layout.py"))
        + ");print(time.perf_counter() - t);print(sorted(m for m in ('tensorflow', 'torch', "
        "'tvm', 'keras', 'onnxruntime') if m in sys.modules))"
    )
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[1] == "[]"


def test_cli_check_static_json_and_exit_codes():
    p = run_cli("check", str(SCRIPTS / "tflite_optimize.py"), "--format", "json")
    doc = json.loads(p.stdout)
    assert p.returncode == 1, p.stderr
    rep = doc["reports"][0]
    assert rep["kind"] == "script" and rep["findings"][0]["rule"] == "CL411"
    assert rep["findings"][0]["location"]["line"] == 15
    assert rep["findings"][0]["repair"]["kind"] == "rewrite-call"
    p = run_cli("check", str(SCRIPTS / "tflite_optimize.clean.py"), "--format", "json")
    assert p.returncode == 0 and json.loads(p.stdout)["reports"][0]["verdict"] == "clean"
    p = run_cli("check", str(SCRIPTS / "torch_not_eval.py"))
    assert p.returncode == 1 and "torch_not_eval.py:19:" in p.stdout and "CL432" in p.stdout
    p = run_cli("check", "no/such/script.py", "--format", "json")
    assert p.returncode == 2 and json.loads(p.stdout)["verdict"] == "error"


def test_timing_budget_of_a_500_line_script():
    """Not a timed test (the benchmark is in bench/scripts); a guard against pathologies."""
    text = _long_script(500)
    t = time.perf_counter()
    analyze_source(text, "long.py")
    assert time.perf_counter() - t < 1.0


def _long_script(n: int) -> str:
    block = (
        (SCRIPTS / "tflite_optimize.py").read_text() + "\n" + (SCRIPTS / "layout.py").read_text()
    )
    lines = []
    while len(lines) < n:
        lines += block.splitlines()
    return "\n".join(lines[:n]) + "\n"




def test_columns_are_characters_not_the_parsers_utf8_bytes():
    """ast counts columns in UTF-8 bytes; findings and the converter calls the editor lands
    conversion
    findings on count characters."""
    src = (SCRIPTS / "tflite_optimize.py").read_text()
    needle = "converter = tf.lite.TFLiteConverter"
    assert needle in src
    text = src.replace(needle, 'tag = "ünï 🙂"; ' + needle)
    line_no = next(i for i, s in enumerate(text.splitlines(), 1) if "ünï" in s)
    line = text.splitlines()[line_no - 1]
    report = analyze_source(text, "convert.py")
    (call,) = [c for c in report.extra["converter_calls"] if c["line"] == line_no]
    assert call["column"] == line.index("tf.lite.TFLiteConverter") and call["end_column"] == len(
        line
    )
    plain = analyze_source(src, "convert.py")
    assert [(f.rule, f.location.line) for f in report.findings] == [
        (f.rule, f.location.line) for f in plain.findings
    ]


# every place a call can sit in Python 3.11 syntax: the walker (facts._walker_source, one
# function per node type) must reach each of them
_CALL = "tf.lite.TFLiteConverter.from_keras_model(m)"
_PLACES = [
    "x = {c}",
    "x: int = {c}",
    "x += {c}",
    "{c}",
    "print({c})",
    "f(k={c})",
    "f(*{c})",
    "f(**{c})",
    "x = [{c}]",
    "x = ({c},)",
    "x = {{{c}}}",
    "x = {{1: {c}}}",
    "x = {{{c}: 1}}",
    "x = [{c} for i in y]",
    "x = [i for i in {c}]",
    "x = [i for i in y if {c}]",
    "x = {{i: {c} for i in y}}",
    "x = ({c} for i in y)",
    "x = {{{c} for i in y}}",
    "x = lambda: {c}",
    "x = lambda a={c}: a",
    "x = {c} if a else b",
    "x = a if {c} else b",
    "x = not {c}",
    "x = a and {c}",
    "x = a < {c}",
    "x = a + {c}",
    "x = {c}[0]",
    "x = y[{c}]",
    "x = y[{c}:]",
    "x = {c}.attr",
    "x = f'{{{c}}}'",
    "x = f'{{a:{{{c}}}}}'",
    "x = (y := {c})",
    "x = await {c}",
    "x = yield {c}",
    "x = yield from {c}",
    "x = *{c},",
    "del x[{c}]",
    "assert {c}",
    "assert a, {c}",
    "raise {c}",
    "raise E from {c}",
    "return {c}",
    "if {c}:\n    pass",
    "if a:\n    {c}",
    "if a:\n    pass\nelse:\n    {c}",
    "if a:\n    pass\nelif {c}:\n    pass",
    "while {c}:\n    pass",
    "while a:\n    {c}",
    "while a:\n    pass\nelse:\n    {c}",
    "for i in {c}:\n    pass",
    "for i in a:\n    {c}",
    "for i in a:\n    pass\nelse:\n    {c}",
    "async for i in {c}:\n    pass",
    "with {c}:\n    pass",
    "with a as b:\n    {c}",
    "async with {c}:\n    pass",
    "try:\n    {c}\nexcept E:\n    pass",
    "try:\n    pass\nexcept {c}:\n    pass",
    "try:\n    pass\nexcept E:\n    {c}",
    "try:\n    pass\nexcept E:\n    pass\nelse:\n    {c}",
    "try:\n    pass\nfinally:\n    {c}",
    "try:\n    pass\nexcept* E:\n    {c}",
    "def g():\n    {c}",
    "def g(a={c}):\n    pass",
    "def g(*, a={c}):\n    pass",
    "def g(a: {c}):\n    pass",
    "def g() -> {c}:\n    pass",
    "@{c}\ndef g():\n    pass",
    "async def g():\n    {c}",
    "class K({c}):\n    pass",
    "class K(metaclass={c}):\n    pass",
    "class K:\n    {c}",
    "@{c}\nclass K:\n    pass",
    "match {c}:\n    case _:\n        pass",
    "match a:\n    case _ if {c}:\n        pass",
    "match a:\n    case _:\n        {c}",
    "global x\nx = {c}",
]


def test_the_walk_reaches_a_call_in_every_syntactic_place():
    from convlint.analyzers.scripts.facts import analyze_text

    head = "import tensorflow as tf\n"
    for place in _PLACES:
        body = place.format(c=_CALL)
        # yield / await / return outside a function do not parse: wrap them (async: await, async
        # for/with)
        if any(k in body for k in ("yield", "await", "return", "async for", "async with")):
            body = (
                "async def outer():\n" + "\n".join("    " + ln for ln in body.splitlines())
                if "yield" not in body
                else "def outer():\n" + "\n".join("    " + ln for ln in body.splitlines())
            )
        facts = analyze_text(head + body + "\n", "walk.py")
        assert facts.syntax_error is None, (place, facts.syntax_error)
        assert [c.call for c in facts.conversions] == [
            "tensorflow.lite.TFLiteConverter.from_keras_model"
        ], place


def test_the_walk_notes_exactly_the_blocks_of_one_statement():
    import ast

    from convlint.analyzers.scripts.facts import analyze_text

    text = "\n".join(p.format(c=_CALL) for p in _PLACES if not any(
        k in p for k in ("yield", "await", "return", "async")))
    facts = analyze_text("import tensorflow as tf\n" + text + "\n", "walk.py")
    want = {
        id(block[0])
        for node in ast.walk(facts.tree)
        if not isinstance(node, ast.Module)
        for name in ("body", "orelse", "finalbody")
        if isinstance(block := getattr(node, name, None), list)
        and len(block) == 1
        and isinstance(block[0], ast.stmt)
    }
    assert facts.alone == want and len(want) > 30


# --- quantization: calibration data and per-tensor depthwise kernels (CL470-CL472) -----------
_TFL_HEAD = """import keras
import numpy as np
import tensorflow as tf

model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.DepthwiseConv2D(3),
                          keras.layers.GlobalAveragePooling2D()])
(x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
"""


def _rules(text: str) -> list:
    return sorted((f.rule, f.location.line) for f in analyze_source(text, "q.py").findings)


@pytest.mark.parametrize("draw", ["tf.random.uniform((1, 16, 16, 3))",
                                  "np.random.default_rng(0).random((1, 16, 16, 3))"])
def test_tflite_random_representative_dataset_and_its_rewrite(draw):
    body = f"""
def rep():
    for k in range(100):
        yield [{draw}]


converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = rep
converter.convert()
"""
    text = _TFL_HEAD + body
    r = analyze_source(text, "q.py")
    assert [(f.rule, f.location.line) for f in r.findings] == [("CL471", 11)]
    new = apply(text, [TextEdit.from_dict(e) for e in r.findings[0].repair.edits])
    assert "yield [x_test[k:k + 1]]" in new and _rules(new) == []


def test_random_data_without_real_data_has_no_rewrite_but_is_found():
    text = """import numpy as np
import torch
from onnxruntime.quantization import CalibrationDataReader, quantize_static

calib = torch.rand(64, 3, 8, 8).numpy()


class R(CalibrationDataReader):
    def __init__(self):
        self.it = iter({"x": c[None]} for c in calib)

    def get_next(self):
        return next(self.it, None)


quantize_static("m.onnx", "q.onnx", R(), per_channel=True)
"""
    r = analyze_source(text, "q.py")
    assert [(f.rule, f.location.line, f.repair) for f in r.findings] == [("CL471", 5, None)]


def test_disable_per_channel_on_depthwise_tflite_and_its_twin():
    conv = """
converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.optimizations = [tf.lite.Optimize.DEFAULT]
converter.representative_dataset = lambda: ([x[None]] for x in x_test[:200])
converter._experimental_disable_per_channel = True
converter.convert()
"""
    text = _TFL_HEAD + conv
    r = analyze_source(text, "q.py")
    assert [(f.rule, f.location.line) for f in r.findings] == [("CL472", 12)]
    assert r.findings[0].evidence["depthwise"] == ["DepthwiseConv2D"]
    fixed = apply(text, [TextEdit.from_dict(e) for e in r.findings[0].repair.edits])
    assert "_experimental_disable_per_channel" not in fixed and _rules(fixed) == []
    assert _rules(text.replace("= True", "= False")) == []


def test_calibration_counts_the_rules_follow_and_those_they_do_not():
    gen = """
N = {n}


def rep():
    for x in x_test[:N]:
        for _ in range(2):
            yield [x[None].astype(np.float32)]


converter = tf.lite.TFLiteConverter.from_keras_model(model)
converter.representative_dataset = rep
"""
    few = _TFL_HEAD + gen.format(n=5)
    r = analyze_source(few, "q.py")
    assert [(f.rule, f.evidence["samples"]) for f in r.findings] == [("CL470", 10)]
    fixed = apply(few, [TextEdit.from_dict(e) for e in r.findings[0].repair.edits])
    assert "N = 50" in fixed and _rules(fixed) == []
    assert _rules(_TFL_HEAD + gen.format(n=50)) == []
    # a count the script does not spell out: silent
    assert _rules(_TFL_HEAD + gen.format(n="len(x_test)").replace("x_test[:N]", "x_test")) == []
