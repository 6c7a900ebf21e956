"""Notebooks on the command line: ``check``, discovery, ``trace`` and ``train-check`` of .ipynb.

Each notebook is a shipped fixture script split across code cells at statement boundaries,
with a magic, a shell escape, a cell magic and markdown cells in between (what a real notebook
has), so every finding must come out as the .py's own, moved to the right cell and line.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from conftest import ROOT, run_cli
from convlint.analyzers.scripts.edits import TextEdit, apply
from convlint.analyzers.scripts.notebook import read_notebook

SCRIPTS = ROOT / "fixtures" / "scripts"
FAULTY = sorted(p.name for p in SCRIPTS.glob("*.py") if ".clean." not in p.name)
OUTPUT = [{"output_type": "stream", "name": "stdout", "text": ["kept\n"]}]


def _code(lines: list[str]) -> dict:
    return {
        "cell_type": "code",
        "execution_count": 1,
        "id": "c",
        "metadata": {},
        "outputs": OUTPUT,
        "source": lines,
    }


def _md(text: str) -> dict:
    return {"cell_type": "markdown", "id": "m", "metadata": {}, "source": text}


def notebook_of(script: Path, dest: Path) -> dict[int, tuple[int, int]]:
    """Write ``script`` as a notebook: three code cells cut at top-level statements, a magic and a
    shell escape opening the second and third, a %%bash cell and markdown between them. Returns
    the script's line -> (cell index, line in the cell)."""
    text = script.read_text()
    lines = text.splitlines(keepends=True)
    starts = [s.lineno for s in ast.parse(text).body]
    a, b = starts[len(starts) // 3], starts[2 * len(starts) // 3]
    chunks = [lines[: a - 1], lines[a - 1 : b - 1], lines[b - 1 :]]
    heads = [[], ["%matplotlib inline\n"], ["!pip install --quiet onnx\n"]]
    cells, where, n = [_md("# Convert the model\nTFLiteConverter docs, torch.onnx notes.")], {}, 1
    for i, (head, chunk) in enumerate(zip(heads, chunks, strict=True)):
        if i:
            cells += [_code(["%%bash\n", "ls -l\n"]), _md(f"Step {i}")]
        cell = head + chunk
        cell[-1] = cell[-1].rstrip("\n")  # Jupyter stores a cell's last line without its newline
        for k in range(len(chunk)):
            where[n] = (len(cells), len(head) + k + 1)
            n += 1
        cells.append(_code(cell))
    doc = {
        "cells": cells,
        "metadata": {"kernelspec": {"name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    dest.write_text(json.dumps(doc, indent=1) + "\n")
    return where


def _check(path: Path, fmt: str = "json", cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``convlint check`` of ``path`` named relative to ``cwd`` (its folder), as a user types it."""
    cwd = cwd or path.parent
    return subprocess.run(
        [sys.executable, "-m", "convlint", "check", os.path.relpath(path, cwd), "--format", fmt],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _findings(p: subprocess.CompletedProcess) -> list[dict]:
    return [f for r in json.loads(p.stdout)["reports"] for f in r["findings"]]


@pytest.mark.parametrize("name", FAULTY)
def test_notebook_findings_are_the_scripts_at_their_cell_and_line(name, tmp_path):
    script = tmp_path / name
    script.write_text((SCRIPTS / name).read_text())
    nb = tmp_path / "nb.ipynb"
    where = notebook_of(script, nb)
    want, got = _findings(_check(script)), _findings(_check(nb))
    assert [f["rule"] for f in got] == [f["rule"] for f in want] and want
    raw = nb.read_text().splitlines()
    cells = json.loads(nb.read_text())["cells"]
    for w, g in zip(want, got, strict=True):
        loc, wl = g["location"], w["location"]
        assert (loc["cell"], loc["cell_line"]) == where[wl["line"]], (name, g)
        assert loc["column"] == wl["column"] and loc.get("end_column") == wl.get("end_column")
        if wl.get("end_line"):
            assert (loc["cell"], loc["cell_end_line"]) == where[wl["end_line"]]
        # the stored line of the .ipynb is that very source line, and so is the cell's line
        stored = json.loads(raw[loc["notebook_line"] - 1].strip().rstrip(","))
        assert stored == cells[loc["cell"]]["source"][loc["cell_line"] - 1]
        assert stored.rstrip("\n") == (SCRIPTS / name).read_text().splitlines()[wl["line"] - 1]
    # the rewrites, spliced into their cells, make the same code as the script's rewrite
    edits = [TextEdit.from_dict(e) for f in got if f.get("repair") for e in f["repair"]["edits"]]
    if edits:
        book = read_notebook(str(nb))
        fixed = json.loads(book.rewrite(edits))
        py_edits = [
            TextEdit.from_dict(e) for f in want if f.get("repair") for e in f["repair"]["edits"]
        ]
        code = [
            c for c in fixed["cells"] if c["cell_type"] == "code" and c["source"][0] != "%%bash\n"
        ]
        joined = "\n".join("".join(c["source"]) for c in code)
        expect = apply(script.read_text(), py_edits)
        drop = ("%matplotlib inline\n", "!pip install --quiet onnx\n")
        assert (
            "".join(ln for ln in joined.splitlines(keepends=True) if ln not in drop).rstrip()
            == expect.rstrip()
        )
        assert [c["outputs"] for c in fixed["cells"] if c["cell_type"] == "code"] == [OUTPUT] * 5
        assert [c for c in fixed["cells"] if c["cell_type"] == "markdown"] == [
            c for c in cells if c["cell_type"] == "markdown"
        ]


def test_positions_in_text_github_and_sarif(tmp_path):
    nb = tmp_path / "nb.ipynb"
    where = notebook_of(SCRIPTS / "tflite_optimize.py", nb)
    (f,) = _findings(_check(nb))
    cell, line = where[15]  # CL411 is on the script's line 15
    loc = f["location"]
    assert (f["rule"], loc["cell"], loc["cell_line"]) == ("CL411", cell, line)
    assert read_notebook(str(nb)).position(loc["line"]) == (cell, line)  # line: in the joined code
    text = _check(nb, "text").stdout
    assert f"nb.ipynb:cell {cell + 1}:{line}:1: CL411 " in text
    gh = _check(nb, "github").stdout
    assert (
        f"::error file=nb.ipynb,line={loc['notebook_line']},endLine={loc['notebook_line']}," in gh
    )
    assert f"::cell {cell + 1}, line {line}: Optimize.DEFAULT" in gh
    sarif = json.loads(_check(nb, "sarif").stdout)
    schema = json.loads((ROOT / "tests" / "schemas" / "sarif-2.1.0-rtm.5.json").read_text())
    jsonschema.Draft4Validator(schema).validate(sarif)
    (res,) = sarif["runs"][0]["results"]
    phys = res["locations"][0]["physicalLocation"]
    assert phys["artifactLocation"]["uri"] == "nb.ipynb"
    assert phys["region"] == {"startLine": loc["notebook_line"], "endLine": loc["notebook_line"]}
    assert res["properties"]["cell"] == cell and res["properties"]["cell_line"] == line
    assert "fixes" not in res  # a cell's range is not a range of the stored JSON


@pytest.mark.parametrize("name", FAULTY)
def test_clean_twin_notebook_is_clean(name, tmp_path):
    twin = name.replace(".py", ".clean.py")
    nb = tmp_path / "clean.ipynb"
    notebook_of(SCRIPTS / twin, nb)
    p = _check(nb)
    assert p.returncode == 0 and _findings(p) == [], p.stdout


def test_discovery_takes_notebooks_whose_code_converts(tmp_path):
    notebook_of(SCRIPTS / "tflite_optimize.py", tmp_path / "convert.ipynb")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    notebook_of(
        SCRIPTS / "tflite_optimize.py", tmp_path / ".ipynb_checkpoints" / "convert-checkpoint.ipynb"
    )
    plain = {
        "cells": [_md("uses tf.lite.TFLiteConverter, in words only"), _code(["print('hello')\n"])],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "explore.ipynb").write_text(json.dumps(plain))
    p = _check(tmp_path, cwd=tmp_path)
    doc = json.loads(p.stdout)
    assert [r["script"] for r in doc["reports"]] == ["convert.ipynb"], doc
    assert p.returncode == 1


@pytest.mark.parametrize(
    "content, says",
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"cells": [], "nbformat": 3, "metadata": {}}), "nbformat 3, not 4"),
        (json.dumps({"nbformat": 4}), "no 'cells' list"),
        (
            json.dumps({"cells": [{"cell_type": "code", "source": 3}], "nbformat": 4}),
            "cell 0's source",
        ),
    ],
)
def test_a_malformed_notebook_is_a_clear_error(tmp_path, content, says):
    nb = tmp_path / "broken.ipynb"
    nb.write_text(content)
    p = _check(nb)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    (f,) = _findings(p)
    assert (
        f["rule"] == "CL001" and says in f["message"] and "not a Jupyter notebook" in f["message"]
    )
    p = _check(nb, "text")
    assert p.returncode == 2 and says in p.stdout + p.stderr and "Traceback" not in p.stderr


def test_trace_of_a_notebook_maps_the_conversion_and_writes_a_fixed_notebook(tmp_path):
    nb = tmp_path / "export.ipynb"
    where = notebook_of(SCRIPTS / "torch_training.py", nb)
    fixed = tmp_path / "fixed" / "export.ipynb"
    p = run_cli(
        "trace",
        str(nb),
        "--allow-exec",
        "--no-tvm",
        "--format",
        "json",
        "--write-fixed",
        str(fixed),
    )
    doc = json.loads(p.stdout)
    assert p.returncode == 1 and doc["verdict"] == "faulty", p.stderr[-2000:]
    (static,) = [f for f in doc["findings"] if f["rule"] == "CL430"]
    assert (static["location"]["cell"], static["location"]["cell_line"]) == where[17]
    assert static["repair"]["verified"] is True
    (conv,) = doc["conversions"]
    assert (conv["call_site"]["cell"], conv["call_site"]["cell_line"]) == where[16]
    errors = [f for f in conv["findings"] if f["severity"] == "error"]
    assert errors and all(
        (f["location"]["cell"], f["location"]["cell_line"]) == where[16] for f in errors
    )
    # the notebook's outputs went to the cache (trace --keep-outputs writes them beside it)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["export.ipynb", "fixed"]
    new = json.loads(fixed.read_text())
    assert "TrainingMode" not in fixed.read_text() and "TrainingMode" in nb.read_text()
    assert len(new["cells"]) == len(json.loads(nb.read_text())["cells"])
    assert new["cells"][where[1][0] + 1]["source"][0] == "%%bash\n"


def test_train_check_of_a_notebook_maps_the_fault_to_its_cell(tmp_path):
    sys.path.insert(0, str(ROOT / "bench" / "training"))
    import programs

    case = next(c for c in programs.cases() if c.name == "t04_lr_too_high")
    bad, _ = programs.sources(case)
    script = tmp_path / "train.py"
    script.write_text(bad)
    nb = tmp_path / "train.ipynb"
    where = notebook_of(script, nb)
    p = run_cli("train-check", str(nb), "--allow-exec", "--format", "json")
    doc = json.loads(p.stdout)
    assert p.returncode == 1 and doc["kind"] == "training", p.stderr[-2000:]
    hit = [f for f in doc["findings"] if f["rule"] in case.rules]
    line = next(i for i, ln in enumerate(bad.splitlines(), 1) if "optimizer = " in ln)
    assert hit and all(
        (f["location"]["cell"], f["location"]["cell_line"]) == where[line] for f in hit
    )
    assert all(f["location"]["file"] == str(nb) for f in hit)


def test_ipython_syntax_is_blanked_in_place(tmp_path):
    cells = [
        _code(["import os\n", "files = !ls\n", "if os.sep:\n", "    !echo hi\n", "%time x = 1"]),
        _code(["%%timeit\n", "this is not python\n"]),
        _code(["y = 2"]),
    ]
    nb = tmp_path / "magics.ipynb"
    nb.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    book = read_notebook(str(nb))
    assert book.text == "import os\n\nif os.sep:\n    pass\n\n\n\ny = 2\n"
    assert book.position(8) == (2, 1) and book.position(4) == (0, 4)
    p = _check(nb)
    assert p.returncode == 0 and _findings(p) == []
