"""Shared test set-up: a private TVM cache per run, quiet frameworks, fixture paths."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("CONVLINT_CACHE_DIR", tempfile.mkdtemp(prefix="convlint-test-cache-"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"


def manifest_pairs() -> list[dict]:
    return json.loads((MODELS / "manifest.json").read_text())["pairs"]


def run_cli(*args: str, env: dict | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python -m convlint ARGS`` as a user would, from the repository root."""
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "convlint", *args], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)


def train_check_json(path: Path, *extra: str, timeout: float = 900) -> tuple[int, dict]:
    """``convlint train-check PATH --allow-exec --format json EXTRA`` run from the script's folder,
    as a user runs it: ``(exit code, report)``."""
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "convlint",
            "train-check",
            str(path),
            "--allow-exec",
            "--format",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=timeout,
    )
    return p.returncode, json.loads(p.stdout)


@pytest.fixture(scope="session")
def models() -> Path:
    return MODELS
