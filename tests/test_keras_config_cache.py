"""keras_layers reads a .keras file's config once per change of the file (the language server
runs the static rules on every edit)."""

import json
import os
import zipfile

from convlint.analyzers.models import keras_config


def write(path, eps):
    cfg = {"class_name": "Functional", "config": {"layers": [
        {"class_name": "BatchNormalization", "config": {"epsilon": eps}}]}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(cfg))


def test_a_changed_file_is_read_again_and_an_unchanged_one_is_not(tmp_path, monkeypatch):
    p = tmp_path / "m.keras"
    write(p, 0.001)
    first = keras_config.keras_layers(str(p))
    assert ("BatchNormalization", {"epsilon": 0.001}) in first
    opened = []
    real = zipfile.ZipFile
    monkeypatch.setattr(keras_config.zipfile, "ZipFile",
                        lambda *a, **k: (len(a) == 1 and opened.append(a)) or real(*a, **k))
    assert keras_config.keras_layers(str(p)) == first and opened == []
    write(p, 0.00123)
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a later mtime, whatever the clock
    again = keras_config.keras_layers(str(p))
    assert ("BatchNormalization", {"epsilon": 0.00123}) in again and len(opened) == 1
    assert keras_config.keras_layers(str(tmp_path / "gone.keras")) is None
