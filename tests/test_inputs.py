"""Input planning: dynamic dims, NHWC/NCHW matching, loading .npy, .npz and image folders."""

import numpy as np
import pytest

from convlint.analyzers.differential.inputs import (
    load_inputs,
    parse_shape_arg,
    plan_inputs,
    random_inputs,
)
from convlint.analyzers.errors import ConvlintError
from convlint.analyzers.models.base import TensorSpec


def spec(name, shape, dtype="float32"):
    return TensorSpec(name, shape, dtype)


def test_dynamic_batch_becomes_one_and_same_layout_needs_no_transpose():
    p = plan_inputs([spec("x", (None, 8, 8, 3))], [spec("x", (None, 8, 8, 3))])
    assert p.source_shapes == {"x": (1, 8, 8, 3)} and p.transposed == {}


def test_nhwc_source_and_nchw_target_are_detected_and_transposed():
    p = plan_inputs([spec("image", (None, 32, 32, 3))], [spec("input", (None, 3, 32, 32))])
    assert p.transposed == {"image": ("input", (0, 3, 1, 2))}
    x = random_inputs(p, 2, 0)
    t = p.for_target(x[0])
    assert t["input"].shape == (1, 3, 32, 32)
    assert np.array_equal(t["input"], np.transpose(x[0]["image"], (0, 3, 1, 2)))


def test_incompatible_inputs_are_an_io_mismatch():
    with pytest.raises(ConvlintError) as e:
        plan_inputs([spec("x", (1, 10))], [spec("y", (1, 12))])
    assert e.value.rule == "CL021"


def test_unknown_dims_need_input_shape():
    with pytest.raises(ConvlintError, match="--input-shape"):
        plan_inputs([spec("x", (None, None, 3))], [spec("x", (None, None, 3))])
    p = plan_inputs([spec("x", (None, None, 3))], [spec("x", (None, None, 3))],
                    parse_shape_arg("x:1x7x3"))
    assert p.source_shapes["x"] == (1, 7, 3)


def test_random_inputs_are_seeded():
    p = plan_inputs([spec("x", (1, 4))], [spec("x", (1, 4))])
    assert np.array_equal(random_inputs(p, 3, 5)[2]["x"], random_inputs(p, 3, 5)[2]["x"])
    assert not np.array_equal(random_inputs(p, 1, 5)[0]["x"], random_inputs(p, 1, 6)[0]["x"])


def test_npy_and_npz_inputs(tmp_path):
    p = plan_inputs([spec("a", (1, 4)), spec("b", (1, 2))], [spec("a", (1, 4)), spec("b", (1, 2))])
    np.savez(tmp_path / "x.npz", a=np.ones((5, 4)), b=np.zeros((5, 2)))
    xs = load_inputs(str(tmp_path / "x.npz"), p)
    assert len(xs) == 5 and xs[0]["a"].shape == (1, 4) and xs[0]["a"].dtype == np.float32
    p1 = plan_inputs([spec("a", (1, 4))], [spec("a", (1, 4))])
    np.save(tmp_path / "x.npy", np.ones((3, 1, 4)))
    assert len(load_inputs(str(tmp_path / "x.npy"), p1, limit=2)) == 2
    np.save(tmp_path / "bad.npy", np.ones((3, 5)))
    with pytest.raises(ConvlintError, match="shape"):
        load_inputs(str(tmp_path / "bad.npy"), p1)


def test_image_folder_with_preprocessing(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.fromarray(np.full((20, 30, 3), 255 * (i % 2), np.uint8)).save(tmp_path / f"{i}.png")
    p = plan_inputs([spec("img", (None, 3, 8, 8))], [spec("img", (None, 3, 8, 8))])
    xs = load_inputs(str(tmp_path), p, scale=1 / 255, mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5])
    assert len(xs) == 3 and xs[0]["img"].shape == (1, 3, 8, 8)
    assert np.allclose(xs[0]["img"], -1.0) and np.allclose(xs[1]["img"], 1.0)


def test_bad_shape_argument_is_a_clear_error():
    with pytest.raises(ConvlintError, match="NAME:1x3x224x224"):
        parse_shape_arg("x:1xfoo")
