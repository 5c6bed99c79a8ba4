"""Test-time augmentation against the official augmented inference."""

from __future__ import annotations

import pytest
import torch

from kapao_edge.errors import InputError
from kapao_edge.model import load_model, predict_tta
from kapao_edge.model.tta import descale, scale_images
from kapao_edge.presets import COCO


@pytest.mark.parametrize("fuse", [True, False])
def test_tta_matches_official(official_checkpoint, reference_io, assert_close_relative, fuse: bool) -> None:
    model = load_model(official_checkpoint, fuse=fuse)
    images = torch.from_numpy(reference_io["input"])
    scales = [float(s) for s in reference_io["tta_scales"]]
    flips = [None if f == -1 else int(f) for f in reference_io["tta_flips"]]  # official: None / 3
    with torch.no_grad():
        official_encoding = predict_tta(model, images, scales, flips)
        ours = predict_tta(model, images)  # defaults: (0.8, 1, 1.2) with (None, "lr", None)
    assert_close_relative(official_encoding.numpy(), reference_io["output_tta"])
    torch.testing.assert_close(ours, official_encoding)


def test_scale_pads_to_the_max_stride() -> None:
    images = torch.rand(1, 3, 256, 320)
    small = scale_images(images, 0.8, 64)
    assert small.shape[-2:] == (256, 256)
    padding = small[..., 204:, :]  # int(256 * 0.8) = 204 rows of image, then padding
    torch.testing.assert_close(padding, torch.full_like(padding, 0.447))
    assert scale_images(images, 1.0, 64) is images
    assert scale_images(images, 1.2, 64).shape[-2:] == (320, 384)


def test_descale_mirrors_boxes_keypoints_and_classes() -> None:
    k = COCO.num_keypoints
    row = torch.zeros(1, 1, 5 + COCO.num_classes + 2 * k)
    row[..., :4] = torch.tensor([20.0, 10.0, 8.0, 6.0])
    row[..., 4], row[..., 5] = 0.9, 0.8
    row[..., 6 + 1] = 0.7  # class of keypoint 1 (left eye)
    row[..., 5 + COCO.num_classes + 2] = 30.0  # keypoint 1 x
    row[..., 5 + COCO.num_classes + 3] = 40.0  # keypoint 1 y
    out = descale(row, 2.0, True, 100, COCO)[0, 0]
    assert out[:4].tolist() == [100 - 10.0, 5.0, 4.0, 3.0]
    assert out[4].item() == pytest.approx(0.9) and out[5].item() == pytest.approx(0.8)
    assert out[6 + 2].item() == pytest.approx(0.7) and out[6 + 1].item() == 0  # became the right eye
    kx, ky = 5 + COCO.num_classes + 4, 5 + COCO.num_classes + 5  # keypoint 2 (right eye)
    assert out[kx].item() == 100 - 15.0 and out[ky].item() == 20.0
    assert out[5 + COCO.num_classes].item() == 100.0  # keypoint 0 at x=0 mirrors to the right edge


def test_unsupported_flip_is_refused(official_checkpoint) -> None:
    model = load_model(official_checkpoint)
    with pytest.raises(InputError, match="unsupported TTA flip"):
        predict_tta(model, torch.rand(1, 3, 64, 64), (1.0,), ("ud",))
    with pytest.raises(InputError, match="one flip per scale"):
        predict_tta(model, torch.rand(1, 3, 64, 64), (1.0, 0.5), (None,))
