"""Fuzzing the model loaders: 500 mutated files per format (bit flips, truncation, overwritten,
inserted and zeroed bytes of a real fixture model, and files that declare gigabytes they do not
hold, with the process's peak memory bounded) must each load or be refused with convlint's
own error: zero uncaught exceptions, zero native crashes, zero hangs. Each format runs in its own
process (bench/fuzz/harness.py), so a native crash is seen as a failure here, not a dead pytest.
The 10,000-case runs are `make bench-fuzz`."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT

HARNESS = ROOT / "bench" / "fuzz" / "harness.py"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "tflite", "keras", "h5", "pt2", "torchscript", "pte"])
def test_mutated_model_files_are_loaded_or_refused_never_crash(fmt, tmp_path):
    if fmt == "pte":
        pytest.importorskip("executorch", reason="install convlint[executorch] to fuzz .pte")
    out = tmp_path / "result.json"
    p = subprocess.run(
        [sys.executable, str(HARNESS), fmt, "500", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert out.exists(), (
        f"the {fmt} loader crashed or hung (rc {p.returncode}); reproducer: "
        f"{out}.case\n{p.stderr[-3000:]}"
    )
    d = json.loads(out.read_text())
    assert d["cases"] == 500 and d["failures"] == [], d["failures"][:5]
    assert d["refused"] > 0  # the mutations do break files
    # the resource family (files that declare gigabytes) is refused without holding them
    assert d["kinds"].get("resource", 0) > 20 and d["peak_rss_mb"] < 4096, d
