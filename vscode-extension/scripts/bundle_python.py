"""Fill vscode-extension/bundled/ with what the .vsix carries of Python (run before `vsce package`):

- ``wheels/``: convlint's wheel and the wheels of its light core (numpy, onnx, onnxruntime, pygls,
  ...) for the Python and platform of the interpreter that runs this script. "Install convlint"
  installs from here with ``--no-index`` (no package index needed); for another Python or
  platform, or with a framework extra, pip takes the rest from the user's index.
- ``libs/``: convlint and the language server's pure-Python dependencies (pygls, lsprotocol and
  theirs), unpacked: a PYTHONPATH entry that lets any supported interpreter run the server and
  the static script checks before convlint is installed in it (as Microsoft's python-tools
  extension template bundles its tool under bundled/libs).
- ``manifest.json``: convlint's version, the wheel's name, the Python and platform of wheels/.

Usage: python vscode-extension/scripts/bundle_python.py  (with the interpreter of .venv)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

EXT = Path(__file__).resolve().parents[1]
ROOT = EXT.parent
OUT = EXT / "bundled"


def pip(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    wheels, libs = OUT / "wheels", OUT / "libs"
    wheels.mkdir(parents=True)
    pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT))
    (wheel,) = wheels.glob("convlint-*.whl")
    # the light core's wheels (binary wheels only: nothing is built on the user's machine)
    pip("download", "--quiet", "--only-binary=:all:", "-d", str(wheels), str(wheel))
    # the server, unpacked, pure Python only
    pip("install", "--quiet", "--no-compile", "--no-deps", "--target", str(libs), str(wheel))
    pip("install", "--quiet", "--no-compile", "--only-binary=:all:", "--target", str(libs),
        "pygls>=2.0", "lsprotocol>=2025.0.0")
    shutil.rmtree(libs / "bin", ignore_errors=True)
    binary = [p for p in libs.rglob("*") if p.suffix in (".so", ".pyd", ".dylib")]
    if binary:
        print(f"bundled/libs must be pure Python, found {binary[:3]}", file=sys.stderr)
        return 1
    version = wheel.name.split("-")[1]
    manifest = {"convlint": version, "wheel": wheel.name,
                "python": f"{sys.version_info.major}.{sys.version_info.minor}",
                "platform": sysconfig.get_platform()}
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    size = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"bundled/: convlint {version}, {len(list(wheels.iterdir()))} wheels, {size / 2**20:.0f} MB "
          f"(Python {manifest['python']}, {manifest['platform']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
