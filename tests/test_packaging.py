"""Packaging promises: namespaced imports, no generic top-level names, cheap imports."""

import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT, run_cli

HEAVY = ("tensorflow", "torch", "tvm", "onnxruntime", "keras", "tf2onnx")


def test_every_package_directory_is_declared_in_pyproject():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(conf["packages"])
    roots = {v: k for k, v in conf["package-dir"].items()}
    found = set()
    for root, pkg in roots.items():
        for init in (ROOT / root).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / root)
            found.add(".".join([pkg, *rel.parts]) if rel.parts else pkg)
    assert found == declared


def test_generic_top_level_names_are_not_importable_outside_the_repo(tmp_path):
    code = ("import importlib.util as u; import convlint.analyzers, convlint.server; "
            "print(u.find_spec('analyzers'), u.find_spec('server'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None None"


def _loaded_after(code: str) -> set:
    probe = (f"{code}\nimport sys; print('LOADED:' + ' '.join(m for m in {HEAVY!r} "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=Path("/"), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("LOADED:")][-1]
    return set(line[len("LOADED:"):].split())


def test_import_convlint_and_the_engine_load_no_framework():
    assert _loaded_after("import convlint, convlint.analyzers.models, "
                         "convlint.analyzers.differential.check, convlint.server.cli") == set()


def test_help_loads_no_framework_and_is_fast():
    assert _loaded_after("import sys; sys.argv=['convlint','--help']\n"
                         "from convlint.server.cli import main\n"
                         "try:\n  main()\nexcept SystemExit: pass") == set()
    p = run_cli("--help")
    assert p.returncode == 0 and "diff" in p.stdout
    p = run_cli("diff", "--help")
    assert p.returncode == 0 and "--num-inputs" in p.stdout and "--atol" in p.stdout


def test_version():
    p = run_cli("--version")
    assert p.returncode == 0 and p.stdout.startswith("convlint 0.")


def test_language_server_start_and_static_rules_load_no_framework():
    scripts = ROOT / "fixtures" / "scripts"
    assert _loaded_after("from convlint.server.lsp.server import build\nbuild()\n"
                         "from pathlib import Path\n"
                         "from convlint.analyzers.scripts.check import analyze_file\n"
                         f"[analyze_file(str(p)) for p in sorted(Path({str(scripts)!r}).iterdir())]") == set()
