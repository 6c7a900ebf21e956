"""Resource bombs: a model file that declares more than it holds is refused before any framework
opens it (CL002, exit 2, in well under the time a framework would take), and a real model with
the same container passes (docs/security.md, "Limits")."""

import json
import time
import zipfile

import numpy as np
import pytest

from conftest import run_cli

ZEROS = 96 * 1024**2  # inflates ~1000:1, over the 64 MiB floor of the ratio rule


def _rezip(src, dst, member: str | None, extra: tuple | None = None):
    """``src`` copied into ``dst`` with ``member`` replaced by ZEROS zero bytes (deflated), or
    with an extra (name, size) member of zeros added."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename == member:
                zout.writestr(info.filename, bytes(ZEROS), zipfile.ZIP_DEFLATED)
            else:
                zout.writestr(info, zin.read(info.filename))
        if extra:
            zout.writestr(extra[0], bytes(extra[1]), zipfile.ZIP_DEFLATED)
    return dst


def diff_json(*args, env=None):
    t = time.perf_counter()
    p = run_cli("diff", *args, "--format", "json", "--no-tvm", "--num-inputs", "2", env=env)
    assert "Traceback" not in p.stderr and "Traceback" not in p.stdout
    return p, json.loads(p.stdout), time.perf_counter() - t


def _refused(p, d):
    assert p.returncode == 2, p.stderr
    (f,) = d["findings"]
    assert f["rule"] == "CL002" and "decompression bomb" in f["message"], f


@pytest.fixture(scope="module")
def bombs(tmp_path_factory, models):
    d = tmp_path_factory.mktemp("bombs")
    pt2 = zipfile.ZipFile(models / "mobilenet.pt2").namelist()
    ts = zipfile.ZipFile(models / "mobilenet.ts.pt").namelist()
    return {
        "keras": _rezip(models / "mobilenet.keras", d / "bomb.keras", "model.weights.h5"),
        "pt2": _rezip(models / "mobilenet.pt2", d / "bomb.pt2", None,
                      (pt2[0].split("/")[0] + "/data/zeros", ZEROS)),
        "torchscript": _rezip(models / "mobilenet.ts.pt", d / "bomb.pt", None,
                              (ts[0].split("/")[0] + "/data/zeros", ZEROS)),
    }


@pytest.mark.parametrize("fmt", ["keras", "pt2", "torchscript"])
def test_zip_bomb_refused_fast(bombs, models, fmt):
    p, d, secs = diff_json(str(bombs[fmt]), str(models / "mobilenet.tflite"))
    _refused(p, d)
    assert f"{ZEROS}" in d["findings"][0]["message"]
    # the CLI's own start is most of it; a framework opening the bomb takes many seconds more
    assert secs < 20


def test_members_over_the_model_size_limit_refused(bombs, models):
    """The ratio rule lifted: the inflated total alone is over the (lowered) size limit."""
    p, d, _ = diff_json(str(bombs["keras"]), str(models / "mobilenet.tflite"),
                        env={"CONVLINT_MAX_MODEL_BYTES": str(50 * 1024**2),
                             "CONVLINT_MAX_COMPRESSION_RATIO": "1e9"})
    _refused(p, d)
    assert "inflate to more than" in d["findings"][0]["message"]


def test_hdf5_declaring_absurd_dataset_refused(tmp_path, models):
    import h5py

    path = tmp_path / "huge.h5"
    with h5py.File(path, "w") as f:  # 8 GiB declared, chunks never written: a few KB on disk
        f.create_dataset("w", shape=(2**31,), dtype="float32", chunks=(1024,), compression="gzip")
    assert path.stat().st_size < 100_000
    p, d, _ = diff_json(str(path), str(models / "mobilenet.tflite"))
    _refused(p, d)
    assert "HDF5 datasets declare" in d["findings"][0]["message"]


def test_tflite_buffer_past_the_file_refused(tmp_path, models):
    from convlint.analyzers.repair import tflite_graph as g

    m = g.load(str(models / "mobilenet.tflite"))
    b = next(b for b in m.buffers if b.data is not None and len(b.data))
    b.data, b.offset, b.size = None, 10**9, 4096  # the 2 GiB+ layout: bytes outside the flatbuffer
    path = tmp_path / "offset.tflite"
    path.write_bytes(g.dump(m))
    p, d, _ = diff_json(str(models / "mobilenet.keras"), str(path))
    _refused(p, d)
    assert "points at bytes" in d["findings"][0]["message"]


def test_clean_containers_pass(models, tmp_path):
    """The clean twins: real archives (and one with a small member of zeros, as a zero-initialized
    bias compresses) are not refused."""
    from convlint.analyzers.models import containers

    for name in ("mobilenet.keras", "mobilenet.pt2", "mobilenet.ts.pt", "resnet.h5",
                 "mobilenet.tflite"):
        containers.check(str(models / name), 2 * 1024**3)
    small = tmp_path / "small_zeros.keras"
    with zipfile.ZipFile(models / "mobilenet.keras") as zin, zipfile.ZipFile(small, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, zin.read(info.filename))
        zout.writestr("assets/zeros.bin", np.zeros(4 * 1024**2, np.uint8).tobytes(),
                      zipfile.ZIP_DEFLATED)
    containers.check(str(small), 2 * 1024**3)


# -- the memory ceiling --------------------------------------------------------------------------
def _model(path, n: int):
    """y = x + sum(ConstantOfShape([n])): allocates n float32s on every run."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([n], np.int64), "shape")
    nodes = [helper.make_node("ConstantOfShape", ["shape"], ["big"],
                              value=helper.make_tensor("v", TensorProto.FLOAT, [1], [1.0])),
             helper.make_node("ReduceSum", ["big"], ["s"], keepdims=1),
             helper.make_node("Add", ["x", "s"], ["y"])]
    g = helper.make_graph(
        nodes,
        "alloc",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        initializer=[shape],
    )
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


CEILING = {"CONVLINT_MEMORY_LIMIT_MB": "1500"}


@pytest.fixture(scope="module")
def alloc(tmp_path_factory):
    d = tmp_path_factory.mktemp("alloc")
    # the huge model allocates 4 GiB per run, over the ceiling; the twin is the small model again
    return (
        _model(d / "small.onnx", 2**20),
        _model(d / "huge.onnx", 2**30),
        _model(d / "twin.onnx", 2**20),
    )


def test_a_model_over_the_memory_ceiling_fails_its_own_check(alloc):
    small, huge, twin = alloc
    p, d, _ = diff_json(str(small), str(huge), env=CEILING)
    assert p.returncode == 1 and d["verdict"] == "crash", p.stderr[-2000:]
    (f,) = [f for f in d["findings"] if f["rule"] == "CL003"]
    assert "ceiling of 1500 MB" in f["message"] and f["evidence"]["model"] == "target"
    p, d, _ = diff_json(str(small), str(twin), env=CEILING)  # the clean twin under the same ceiling
    assert p.returncode == 0 and d["verdict"] == "equivalent", p.stderr[-2000:]


def test_the_ceiling_holds_in_checks_workers(alloc, tmp_path):
    import os
    import subprocess
    import sys

    small, huge, twin = alloc
    (tmp_path / "convlint.toml").write_text(
        f"pairs = [{{source = '{small}', target = '{huge}'}},\n"
        f"         {{source = '{small}', target = '{twin}'}}]\n")
    p = subprocess.run([sys.executable, "-m", "convlint", "check", "--jobs", "2", "--no-tvm",
                        "--format", "json"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=600, env=dict(os.environ, **CEILING))
    convs = [r for r in json.loads(p.stdout)["reports"] if r["kind"] == "conversion"]
    assert [r["verdict"] for r in convs] == ["crash", "equivalent"], p.stderr[-2000:]
    assert "ceiling of 1500 MB" in convs[0]["findings"][0]["message"]


async def test_the_ceiling_holds_in_the_language_servers_worker(alloc, tmp_path, monkeypatch):
    """The server's worker runs models under the same ceiling: the allocating pair is a crash
    finding with the note, the twin is equivalent, and the server answers on."""
    from lsp_helpers import command, start, stop

    small, huge, twin = alloc
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "convlint.toml").write_text(
        f"[[pairs]]\nsource = '{small}'\ntarget = '{huge}'\n\n"
        f"[[pairs]]\nsource = '{small}'\ntarget = '{twin}'\n")
    monkeypatch.setenv("CONVLINT_MEMORY_LIMIT_MB", CEILING["CONVLINT_MEMORY_LIMIT_MB"])
    client = await start(tmp_path, ws, heavyChecks=True, trustedExecution=True, tvm=False)
    try:
        res = await command(client, "convlint.checkWorkspace")
        by_target = {r["target"]["path"]: r for r in res["reports"]}
        crash = by_target[str(huge)]
        assert crash["verdict"] == "crash"
        assert "ceiling of 1500 MB" in crash["findings"][0]["message"]
        assert by_target[str(twin)]["verdict"] == "equivalent"
        assert (await command(client, "convlint.status"))["worker_crashes"] == 0
    finally:
        await stop(client)


def test_savedmodel_variables_are_counted_before_loading(models):
    """A SavedModel's variables are read from the checkpoint index (shapes only) and held to the
    limit: lowered below what the shipped SavedModel declares, it is refused; its clean twin (the
    default limit) passes."""
    from convlint.analyzers.errors import ModelLoadError
    from convlint.analyzers.models import containers

    path = str(models / "gelu_savedmodel")
    containers.check(path, 2 * 1024**3)
    with pytest.raises(ModelLoadError) as e:
        containers.check(path, 64)
    assert "its variables declare" in e.value.message and e.value.rule == "CL002"
