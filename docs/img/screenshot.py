"""Regenerate docs/img/html-report.png: the HTML report of a repaired fixture pair, as headless
Chromium renders it.  ``make docs-screenshot``"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS = ROOT / "fixtures" / "models"


def main() -> int:
    exe = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if exe is None:
        print("needs chromium (apt install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        html = tmp / "report.html"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "convlint",
                "diff",
                "fixtures/models/mobilenet.keras",
                "fixtures/models/mobilenet.dynint8.tflite",
                "--repair",
                "--output",
                str(tmp / "repaired.tflite"),
                "--html",
                str(html),
            ],
            cwd=ROOT,
            check=False,
            capture_output=True,
        )
        out = ROOT / "docs" / "img" / "html-report.png"
        subprocess.run(
            [
                exe,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--hide-scrollbars",
                f"--user-data-dir={tmp / 'profile'}",
                "--window-size=1200,1380",
                f"--screenshot={out}",
                html.as_uri(),
            ],
            check=True,
            capture_output=True,
        )
        print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
