from __future__ import annotations

import json

import numpy as np
import pytest

from kapao_edge.data import letterbox
from kapao_edge.errors import InputError

NUM_LETTERBOX_CASES = 16


@pytest.fixture(scope="module")
def letterbox_cases(reference_dir):
    cases = json.loads((reference_dir / "letterbox_cases.json").read_text())
    with np.load(reference_dir / "letterbox_cases.npz") as arrays:
        images = {key: arrays[key] for key in arrays.files}
    assert len(cases) == NUM_LETTERBOX_CASES
    return cases, images


@pytest.mark.parametrize("index", range(NUM_LETTERBOX_CASES))
def test_matches_official_letterbox_pixel_for_pixel(letterbox_cases, index):
    cases, images = letterbox_cases
    case = cases[index]
    out, ratio, pad = letterbox(
        images[f"{case['case']}_in"], case["imgsz"], stride=case["stride"], auto=case["auto"]
    )
    expected = images[f"{case['case']}_out"]
    assert out.shape == expected.shape == (*case["out_hw"], 3)
    np.testing.assert_array_equal(out, expected)
    assert ratio == tuple(case["ratio"])
    assert pad == tuple(case["pad"])


def test_odd_padding_puts_extra_pixel_bottom_right():
    image = np.full((200, 97, 3), 7, np.uint8)  # scaled to 64 x 31: 33 px of horizontal padding
    out, ratio, (pad_w, pad_h) = letterbox(image, 64, auto=False)
    assert out.shape == (64, 64, 3)
    assert ratio == (0.32, 0.32) and (pad_w, pad_h) == (16.5, 0.0)
    inside = np.flatnonzero((out[32] == 7).all(axis=-1))  # columns holding image pixels on the middle row
    assert (inside[0], inside[-1]) == (16, 64 - 17 - 1)  # 16 px left, 17 px right


def test_scaleup_false_never_enlarges():
    image = np.random.default_rng(0).integers(0, 255, (50, 60, 3), dtype=np.uint8)
    out, ratio, pad = letterbox(image, 128, auto=False, scaleup=False)
    assert ratio == (1.0, 1.0)
    assert out.shape == (128, 128, 3)
    top, left = int(round(pad[1] - 0.1)), int(round(pad[0] - 0.1))
    np.testing.assert_array_equal(out[top : top + 50, left : left + 60], image)
    assert (out[0, 0] == 114).all()


def test_scale_fill_stretches_without_padding():
    image = np.zeros((50, 100, 3), np.uint8)
    out, ratio, pad = letterbox(image, (64, 128), auto=False, scale_fill=True)
    assert out.shape == (64, 128, 3)
    assert ratio == (1.28, 1.28) and pad == (0.0, 0.0)
    out, ratio, _ = letterbox(image, (128, 128), auto=False, scale_fill=True)
    assert ratio == (1.28, 2.56) and not (out == 114).any()


def test_grayscale_and_custom_color():
    out, _, _ = letterbox(np.zeros((32, 64), np.uint8), 64, auto=False, color=(9, 9, 9))
    assert out.shape == (64, 64)
    assert out[0, 0] == 9 and out[32, 32] == 0


@pytest.mark.parametrize("bad", [np.zeros((0, 5, 3), np.uint8), np.zeros((4,), np.uint8), "image.jpg"])
def test_rejects_non_images(bad):
    with pytest.raises(InputError):
        letterbox(bad, 64)


@pytest.mark.parametrize("shape", [0, (64, -1), (64,), "64"])
def test_rejects_bad_target_shape(shape):
    with pytest.raises(InputError):
        letterbox(np.zeros((8, 8, 3), np.uint8), shape)
