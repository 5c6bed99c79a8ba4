from __future__ import annotations

import cv2
import numpy as np
import pytest

from kapao_edge.data import (
    LetterboxInfo,
    as_bgr,
    letterbox,
    prepare,
    prepare_val,
    rect_batch_shape,
    resize_long_side,
    to_tensor_batch,
)
from kapao_edge.errors import InputError


@pytest.fixture()
def noise_image() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (333, 517, 3), dtype=np.uint8)  # (H, W, 3) BGR


def test_to_tensor_batch_is_contiguous_rgb_in_unit_range():
    blue = np.zeros((64, 128, 3), np.uint8)
    blue[..., 0] = 255  # pure blue in BGR
    grey = np.full((64, 128, 3), 51, np.uint8)
    batch = to_tensor_batch([blue, grey])  # (2, 3, 64, 128)
    assert batch.shape == (2, 3, 64, 128) and batch.dtype == np.float32
    assert batch.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(batch[0, 2], 1.0)  # blue lands in the last (B of RGB) plane
    np.testing.assert_array_equal(batch[0, :2], 0.0)
    np.testing.assert_array_equal(batch[1], np.float32(51) / np.float32(255))


def test_to_tensor_batch_accepts_a_stacked_array_and_rejects_mixed_shapes():
    images = np.zeros((3, 64, 64, 3), np.uint8)
    assert to_tensor_batch(images).shape == (3, 3, 64, 64)
    with pytest.raises(InputError, match="share one shape"):
        to_tensor_batch([np.zeros((64, 64, 3), np.uint8), np.zeros((64, 128, 3), np.uint8)])
    with pytest.raises(InputError):
        to_tensor_batch([])


def test_prepare_letterboxes_and_reports_geometry(noise_image):
    chw, info = prepare(noise_image, 320)
    padded, ratio, pad = letterbox(noise_image, 320, stride=64, auto=True)
    assert info == LetterboxInfo(original_hw=(333, 517), input_hw=(256, 320), ratio=ratio, pad=pad)
    np.testing.assert_array_equal(chw, to_tensor_batch([padded])[0])
    full_chw, full_info = prepare(noise_image, (320, 384), auto=False)
    assert full_chw.shape == (3, 320, 384) and full_info.input_hw == (320, 384)


@pytest.mark.parametrize("size", [300, (320, 100), 0])
def test_input_size_must_be_a_multiple_of_64(noise_image, size):
    with pytest.raises(InputError, match="multiple of 64|positive"):
        prepare(noise_image, size)


def test_as_bgr_converts_grey_and_alpha():
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert as_bgr(grey).shape == (3, 4, 3)
    np.testing.assert_array_equal(as_bgr(grey)[..., 1], grey)
    np.testing.assert_array_equal(as_bgr(grey[..., None]), as_bgr(grey))
    bgra = np.dstack([np.full((3, 4), v, np.uint8) for v in (10, 20, 30, 40)])
    np.testing.assert_array_equal(as_bgr(bgra), bgra[..., :3])
    with pytest.raises(InputError, match="uint8"):
        as_bgr(np.zeros((3, 4, 3), np.float32))
    with pytest.raises(InputError):
        as_bgr(np.zeros((3, 4, 2), np.uint8))


def test_resize_long_side_uses_area_to_shrink_and_linear_to_enlarge(noise_image):
    shrunk = resize_long_side(noise_image, 320)
    assert shrunk.shape == (206, 320, 3)  # int(333 * 320 / 517) truncates 206.1
    np.testing.assert_array_equal(shrunk, cv2.resize(noise_image, (320, 206), interpolation=cv2.INTER_AREA))
    enlarged = resize_long_side(noise_image, 640)
    assert enlarged.shape == (412, 640, 3)  # int(333 * 640 / 517) truncates 412.2
    np.testing.assert_array_equal(enlarged, cv2.resize(noise_image, (640, 412), interpolation=cv2.INTER_LINEAR))
    assert resize_long_side(noise_image, 517) is noise_image
    with pytest.raises(InputError):
        resize_long_side(noise_image, 0)


def test_prepare_val_resizes_then_pads_without_enlarging(noise_image):
    chw, info = prepare_val(noise_image, 640)
    resized = resize_long_side(noise_image, 640)
    padded, _, pad = letterbox(resized, 640, auto=False, scaleup=False)
    assert chw.shape == (3, 640, 640)
    np.testing.assert_array_equal(chw, to_tensor_batch([padded])[0])
    assert info.original_hw == (333, 517) and info.input_hw == (640, 640) and info.pad == pad
    assert info.ratio == pytest.approx((640 / 517, 412 / 333))
    rect_chw, rect_info = prepare_val(noise_image, 640, batch_hw=(448, 640))
    assert rect_chw.shape == (3, 448, 640) and rect_info.pad == (0.0, 18.0)


def test_rect_batch_shape_follows_the_widest_or_tallest_image():
    assert rect_batch_shape([(480, 640), (333, 517)], 640) == (512, 640)  # max h/w 0.75 -> 480 -> 512
    assert rect_batch_shape([(700, 500), (640, 480)], 640) == (640, 512)  # min h/w 1.33 -> 480 -> 512
    assert rect_batch_shape([(480, 640), (700, 500)], 640) == (640, 640)  # mixed: square
    with pytest.raises(InputError):
        rect_batch_shape([], 640)
