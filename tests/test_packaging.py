"""Packaging promises: namespaced imports, no generic top-level names, cheap imports."""

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import MODELS, ROOT, run_cli
from jsonrpc_client import one_session

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
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=Path("/"), capture_output=True, text=True
    )
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
    assert (
        _loaded_after(
            "from convlint.server.lsp.server import build\nbuild()\n"
            "from pathlib import Path\n"
            "from convlint.analyzers.scripts.check import analyze_file\n"
            f"[analyze_file(str(p)) for p in sorted(Path({str(scripts)!r}).iterdir())]"
        )
        == set()
    )


# --- the light core: `pip install .` without extras, in a virtual environment of its own ------

@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory):
    """A fresh virtual environment with convlint's wheel installed and no extra."""
    import venv

    tmp = tmp_path_factory.mktemp("bare")
    wheels = tmp / "wheels"
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stderr
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    wheel = next(wheels.glob("convlint-*.whl"))
    p = subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheel)],
                       capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr
    return env_dir


def _bare(env_dir, *args, timeout=600):
    return subprocess.run(
        [str(env_dir / "bin" / "convlint"), *args],
        cwd=str(env_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": f"{env_dir / 'bin'}:/usr/bin:/bin", "HOME": str(env_dir), "NO_COLOR": "1"},
    )


@pytest.mark.slow
def test_the_light_core_installs_no_framework(bare_venv):
    p = subprocess.run(
        [str(bare_venv / "bin" / "python"), "-m", "pip", "list", "--format", "freeze"],
        capture_output=True,
        text=True,
    )
    names = {ln.split("==")[0].lower() for ln in p.stdout.splitlines()}
    assert "convlint" in names
    assert not names & {
        "tensorflow",
        "tensorflow-cpu",
        "torch",
        "apache-tvm",
        "tf2onnx",
        "keras",
    }, names


@pytest.mark.slow
def test_the_light_core_checks_onnx_pairs_and_says_tvm_is_missing(bare_venv):
    p = _bare(
        bare_venv,
        "diff",
        str(MODELS / "resnet.torch.onnx"),
        str(MODELS / "resnet.torch.tampered.onnx"),
        "--format",
        "json",
    )
    assert p.returncode == 1, p.stderr
    rep = json.loads(p.stdout)
    rules = [f["rule"] for f in rep["findings"]]
    # found and localized; the TVM leg skipped with a note
    assert "CL204" in rules and "CL011" in rules
    assert "Traceback" not in p.stderr
    # the clean twin: an ONNX model against itself is equivalent, no error
    p = _bare(
        bare_venv, "diff", str(MODELS / "resnet.torch.onnx"), str(MODELS / "resnet.torch.onnx")
    )
    assert p.returncode == 0, p.stdout + p.stderr
    assert "EQUIVALENT" in p.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "source,extra", [("mobilenet.keras", "tensorflow"), ("resnet.pt2", "torch")]
)
def test_the_light_core_names_the_extra_a_format_needs(bare_venv, source, extra):
    target = "mobilenet.tf2onnx.onnx" if extra == "tensorflow" else "resnet.torch.onnx"
    p = _bare(bare_venv, "diff", str(MODELS / source), str(MODELS / target))
    assert p.returncode == 2
    assert f"pip install 'convlint[{extra}]'" in p.stderr
    assert "Traceback" not in p.stderr and "ImportError" not in p.stderr
    p = _bare(bare_venv, "diff", str(MODELS / source), str(MODELS / target), "--format", "json")
    assert p.returncode == 2
    assert [f["rule"] for f in json.loads(p.stdout)["findings"]] == ["CL005"]


@pytest.mark.slow
def test_the_light_core_runs_static_checks_and_the_server(bare_venv, tmp_path):
    scripts = tmp_path / "scripts"
    shutil.copytree(ROOT / "fixtures" / "scripts", scripts)
    p = _bare(bare_venv, "check", str(scripts), "--format", "json")
    assert p.returncode == 1, p.stderr  # the fixture scripts carry faults
    assert "CL420" in p.stdout
    # the language server answers a real session (initialize, didOpen, diagnostics, shutdown)
    ws = bare_venv / "session"
    ws.mkdir(exist_ok=True)
    codes = one_session(str(bare_venv / "bin" / "python"), ws,
                        env={"PATH": f"{bare_venv / 'bin'}:/usr/bin:/bin", "HOME": str(bare_venv)})
    assert "CL411" in codes  # Optimize.DEFAULT without a representative dataset


def test_one_list_of_model_extensions():
    """The format detector owns the model extensions; the server and the extension watch them
    all."""
    import re

    from convlint.analyzers.models.detect import EXTENSIONS
    from convlint.server.lsp.session import MODEL_GLOB, MODEL_SUFFIXES

    exts = {e.lstrip(".") for e in EXTENSIONS}
    assert set(MODEL_SUFFIXES) == set(EXTENSIONS)
    assert set(MODEL_GLOB[len("**/*.{"):-1].split(",")) == exts
    ts = (ROOT / "vscode-extension" / "src" / "controller.ts").read_text()
    glob = re.search(r'MODEL_GLOB = "\*\*/\*\.\{([^}]*)\}"', ts).group(1)
    assert set(glob.split(",")) == exts
    filters = re.search(r'"Models": \[([^\]]*)\]', ts).group(1)
    assert {f.strip().strip('"') for f in filters.split(",")} == exts


def test_the_oldest_pins_are_the_declared_lower_bounds():
    """tests/compat/oldest.txt (what `make test-compat` installs) pins every dependency and
    framework extra at the lower bound pyproject.toml declares, so the range is tested at its
    floor."""
    import re

    from packaging.version import Version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = list(project["dependencies"])
    for extra in ("tensorflow-cpu", "torch", "tvm"):
        declared += project["optional-dependencies"][extra]
    pins = {}
    for line in (ROOT / "tests" / "compat" / "oldest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.lower()] = Version(version)
    # no upper bound
    assert "<" not in " ".join(declared) and not project["requires-python"].count("<")
    for spec in declared:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", spec)
        assert m, f"{spec}: a framework or dependency is declared as a range with a lower bound"
        assert pins.get(m.group(1).lower()) == Version(m.group(2)), spec
