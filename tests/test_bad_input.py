"""Bad input ends in a clear message and exit 2, never a traceback."""

import json

import pytest

from conftest import run_cli


def diff_json(*args):
    p = run_cli("diff", *args, "--format", "json", "--no-tvm", "--num-inputs", "2")
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    return p, json.loads(p.stdout)


@pytest.fixture
def bad_files(tmp_path, models):
    src = (models / "mobilenet.torch.onnx").read_bytes()
    files = {
        "empty.onnx": b"",
        "truncated.onnx": src[: len(src) // 3],
        "garbage.tflite": b"\x00\x01not a flatbuffer at all" * 50,
        "truncated.tflite": (models / "mobilenet.tflite").read_bytes()[:200],
        "garbage.keras": b"PK\x03\x04 this is not really a zip",
        "model.txt": b"hello",
        "onnx_named.tflite": src,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    import pickle

    (tmp_path / "pickled.pt").write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    return tmp_path


@pytest.mark.parametrize("name,expect", [
    ("empty.onnx", "empty"),
    ("truncated.onnx", "cannot be read as a onnx model"),
    ("garbage.tflite", "TFL3"),
    ("truncated.tflite", "cannot be read as a tflite model"),
    ("garbage.keras", "cannot be read as a keras model"),
    ("model.txt", "unsupported model format"),
    ("missing.onnx", "no such file"),
])
def test_unreadable_model_exit_2(bad_files, models, name, expect):
    p, d = diff_json(str(models / "mobilenet.torch.onnx"), str(bad_files / name))
    assert p.returncode == 2
    assert d["verdict"] == "error" and len(d["findings"]) == 1
    f = d["findings"][0]
    assert f["severity"] == "error" and f["rule"] in ("CL001", "CL002", "CL004")
    assert expect in f["message"]


def test_content_and_extension_disagree(bad_files, models):
    p, d = diff_json(str(models / "mobilenet.torch.onnx"), str(bad_files / "onnx_named.tflite"))
    assert p.returncode == 2 and "TFL3" in d["findings"][0]["message"]


@pytest.mark.parametrize("args,expect", [
    (["diff", "a.onnx"], "required"),
    (["diff", "a", "b", "--num-inputs", "0"], "at least 1"),
    (["diff", "a", "b", "--atol", "-1"], "at least 0"),
    (["diff", "a", "b", "--bogus"], "unrecognized"),
])
def test_bad_arguments_exit_2_with_json(args, expect):
    p = run_cli(*args, "--format", "json")
    assert p.returncode == 2 and "Traceback" not in p.stderr
    d = json.loads(p.stdout)
    assert d["verdict"] == "error" and d["findings"][0]["rule"] == "CL001"
    assert expect in d["findings"][0]["message"]


def test_bad_arguments_in_text_mode_say_what_to_do():
    p = run_cli("diff", "only-one.onnx")
    assert p.returncode == 2 and "convlint: error:" in p.stderr and "--help" in p.stderr
    assert p.stdout == ""


def test_mismatched_models_are_an_io_finding(models):
    p, d = diff_json(str(models / "gelu_exact.keras"), str(models / "mobilenet.torch.onnx"))
    assert p.returncode == 1 and d["verdict"] == "divergent"
    assert d["findings"][0]["rule"] == "CL021"


MARKER_CODE = "import pathlib; pathlib.Path({!r}).write_text('pwned')"


def test_pickle_payload_is_refused_and_never_runs(tmp_path, models):
    import pickle

    marker = tmp_path / "marker"

    class Payload:
        def __reduce__(self):
            return (exec, (MARKER_CODE.format(str(marker)),))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps(Payload()))
    p, d = diff_json(str(models / "mobilenet.torch.onnx"), str(tmp_path / "evil.pt"))
    assert p.returncode == 2 and d["findings"][0]["rule"] == "CL004"
    assert "never unpickles" in d["findings"][0]["message"]
    assert not marker.exists()


def test_keras_lambda_is_refused_explained_and_never_runs(tmp_path):
    import subprocess
    import sys

    marker = tmp_path / "marker"
    model = tmp_path / "lambda.keras"
    build = (
        "import keras\n"
        "def f(x):\n"
        f"    {MARKER_CODE.format(str(marker))}\n"
        "    return x\n"
        "i = keras.Input((4,), name='x')\n"
        "keras.Model(i, keras.layers.Lambda(f, name='evil')(keras.layers.Dense(2)(i))).save("
        f"{str(model)!r})\n")
    subprocess.run([sys.executable, "-c", build], check=True, capture_output=True)
    marker.unlink(missing_ok=True)  # building the model may call f once
    p, d = diff_json(str(model), str(model))
    assert p.returncode == 2
    f = d["findings"][0]
    assert f["rule"] == "CL004" and "Lambda" in f["message"] and "evil" in f["message"]
    assert "--unsafe-load" in f["message"]
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["truncated", "member-missing"])
def test_a_corrupt_pt2_prints_no_traceback_on_any_stream(tmp_path, models, damage):
    """torch.export.load logs the real error with a traceback; convlint keeps it for the message
    and prints only its own line."""
    import zipfile

    src = models / "resnet.pt2"
    bad = tmp_path / "bad.pt2"
    if damage == "truncated":
        bad.write_bytes(src.read_bytes()[:3000])
    else:
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
            for name in zin.namelist():
                if not name.endswith("/version"):
                    zout.writestr(name, zin.read(name))
    for fmt in ("json", "text"):
        p = run_cli(
            "diff", str(bad), str(models / "resnet.torch.onnx"), "--format", fmt, "--no-tvm"
        )
        assert p.returncode == 2
        assert "Traceback" not in p.stderr + p.stdout and "torch/export" not in p.stderr
        assert "cannot be read as a torch-exported model by torch" in p.stdout + p.stderr
    # the clean twin: the intact file loads
    p = run_cli(
        "diff", str(src), str(models / "resnet.torch.onnx"), "--no-tvm", "--num-inputs", "2"
    )
    assert p.returncode == 0, p.stdout + p.stderr
