"""Every runner: specs, a native run, the layer table, intermediates, metadata and TVM."""

import numpy as np
import pytest

from convlint.analyzers.models import open_model

CASES = {
    # file: (format, layout, a layer name the table must hold, an op type it must hold)
    "resnet.keras": ("keras", "NHWC", "res_conv1", "Conv2D"),
    "resnet.h5": ("keras", "NHWC", "res_bn1", "BatchNormalization"),
    "resnet_savedmodel": ("savedmodel", "NHWC", "resnet_1/res_conv1_1/convolution", "Conv2D"),
    "resnet.tflite": ("tflite", "NHWC", None, "CONV_2D"),
    "resnet.tf2onnx.onnx": ("onnx", "NHWC", None, "Conv"),
    "resnet.torch.onnx": ("onnx", "NCHW", None, "Conv"),
    "resnet.pt2": ("torch-exported", "NCHW", "conv1", "Conv2d"),
    "resnet.ts.pt": ("torchscript", "NCHW", "conv1", "Conv2d"),
}


def shapes_for(runner):
    out = {}
    for s in runner.input_specs():
        out[s.name] = tuple(d or 1 for d in s.shape) if s.shape else (1, 3, 32, 32)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_runner_interface(models, name):
    fmt, layout, layer, op = CASES[name]
    r = open_model(models / name, input_shapes={"x": (1, 3, 32, 32)})
    assert r.format == fmt
    with r:
        specs = r.input_specs()
        assert len(specs) == 1
        if fmt != "torchscript":  # TorchScript records no shapes; they come from --input-shape
            assert specs[0].layout == layout
        shapes = shapes_for(r)
        x = {
            n: np.random.default_rng(1).uniform(-1, 1, s).astype(np.float32)
            for n, s in shapes.items()
        }
        y = list(r.run(x).values())
        assert len(y) == 1 and y[0].shape == (1, 10) and np.all(np.isfinite(y[0]))
        table = r.layers()
        assert any(t.op_type == op for t in table)
        if layer:
            (t,) = [t for t in table if t.name == layer]
            assert t.weights and all(isinstance(w, np.ndarray) for w in t.weights.values())
        weighted = [t for t in table if t.weights]
        assert weighted, "the layer table carries the weights"
        inter = r.intermediates(x)
        if fmt != "savedmodel":
            assert len(inter) >= 5
            assert all(isinstance(v, np.ndarray) for v in inter.values())
        tvm = r.to_tvm(shapes)
        assert tvm.route and r.tvm_route == tvm.route
        yt = tvm.run(x)
        assert np.allclose(yt[0], y[0], atol=1e-4, rtol=1e-4)
        captured = tvm.intermediates(x)
        assert len(captured) >= 5 and any("conv2d" in k for k in captured)


@pytest.mark.slow
def test_conversion_metadata_names_the_producer(models):
    assert open_model(models / "resnet.tf2onnx.onnx").metadata()["producer_name"] == "tf2onnx"
    assert open_model(models / "resnet.torch.onnx").metadata()["producer_name"] == "pytorch"
    meta = open_model(models / "resnet.dynint8.tflite").metadata()
    assert meta["tensor_dtypes"].get("int8", 0) > 0
    assert "int8" not in open_model(models / "resnet.tflite").metadata()["tensor_dtypes"]


@pytest.mark.slow
def test_tflite_layer_table_reads_builtin_options_and_quantization(models):
    table = open_model(models / "mobilenet.dynint8.tflite").layers()
    conv = [t for t in table if t.op_type == "CONV_2D"]
    assert conv and conv[0].attributes.get("StrideW") == 2 and "Padding" in conv[0].attributes
    assert any("quantization" in t.attributes for t in table)


@pytest.mark.slow
def test_tvm_compile_is_cached_on_disk(models, tmp_path, monkeypatch):
    import time

    from convlint.analyzers.models import tvm_runner

    monkeypatch.setenv("CONVLINT_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(tvm_runner, "_MEMO", {})
    r = open_model(models / "inception.torch.onnx")
    r.to_tvm({"input": (1, 3, 32, 32)})
    libs = list((tmp_path / "tvm").glob("*.so"))
    assert len(libs) == 1
    monkeypatch.setattr(tvm_runner, "_MEMO", {})
    t = time.perf_counter()
    again = open_model(models / "inception.torch.onnx").to_tvm({"input": (1, 3, 32, 32)})
    assert time.perf_counter() - t < 1.0 and again.route == "onnx -> relax.frontend.onnx"
    # a corrupt cache entry is detected and rebuilt (replaced, not rewritten in place: the old
    # library is still mapped into this process, as it would be in a long-running server)
    libs[0].unlink()
    libs[0].write_bytes(b"garbage")
    monkeypatch.setattr(tvm_runner, "_MEMO", {})
    rebuilt = open_model(models / "inception.torch.onnx").to_tvm({"input": (1, 3, 32, 32)})
    assert rebuilt.run({"input": np.zeros((1, 3, 32, 32), np.float32)})[0].shape == (1, 10)


@pytest.mark.slow
def test_torchscript_temporary_exports_are_removed(models):
    import tempfile
    from pathlib import Path

    before = set(Path(tempfile.gettempdir()).glob("convlint-ts-*"))
    with open_model(models / "mobilenet.ts.pt", input_shapes={"x": (1, 3, 32, 32)}) as r:
        r.intermediates({"x": np.zeros((1, 3, 32, 32), np.float32)})
        assert set(Path(tempfile.gettempdir()).glob("convlint-ts-*")) - before
    assert set(Path(tempfile.gettempdir()).glob("convlint-ts-*")) == before
