"""The device letterbox (torch) against the OpenCV letterbox: same geometry, pixels within one grey level."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from kapao_edge.data.device_letterbox import letterbox_into
from kapao_edge.data.letterbox import letterbox, letterbox_geometry


@pytest.mark.parametrize(
    ("frame_hw", "target", "auto"),
    [((480, 640), (448, 448), False), ((480, 640), (1280, 1280), False), ((720, 1280), (640, 640), True),
     ((333, 517), (640, 640), False), ((448, 448), (448, 448), False)],
)
def test_device_letterbox_matches_opencv(frame_hw, target, auto) -> None:
    from kapao_edge.data.synth import generate_scene

    scene = generate_scene(np.random.default_rng(5), "coco", imgsz=(480, 640)).image
    frame = cv2.resize(scene, (frame_hw[1], frame_hw[0]))  # (h0, w0, 3)
    expected, ratio, pad = letterbox(frame, target, auto=auto)
    geometry = letterbox_geometry(frame_hw, target, auto=auto)
    assert (geometry.ratio, geometry.pad) == (ratio, pad) and geometry.output_hw == expected.shape[:2]
    out = torch.empty((*geometry.output_hw, 3), dtype=torch.uint8)
    letterbox_into(torch.from_numpy(frame), geometry, out)
    diff = np.abs(out.numpy().astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1
    assert (diff > 0).mean() < 0.002  # the same fixed-point arithmetic as OpenCV
    border = expected[: geometry.top] if geometry.top else expected[:, : geometry.left]
    assert np.all(out.numpy()[: border.shape[0], : border.shape[1]] == border)  # grey border exact


def test_wrong_output_buffer_is_refused() -> None:
    geometry = letterbox_geometry((480, 640), (448, 448), auto=False)
    with pytest.raises(ValueError, match="output buffer"):
        letterbox_into(torch.zeros((480, 640, 3), dtype=torch.uint8), geometry, torch.empty((448, 440, 3), dtype=torch.uint8))
