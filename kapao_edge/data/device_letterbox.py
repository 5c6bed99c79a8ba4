"""The letterbox in torch, so a GPU pipeline uploads the camera's uint8 frame and resizes it on the device.

Geometry comes from ``letterbox_geometry`` (the same arithmetic as the OpenCV letterbox). The resize
reproduces OpenCV's INTER_LINEAR on uint8 in integer arithmetic: half-pixel centres, 11-bit weights,
a horizontal then a vertical pass with the rounding of OpenCV's vectorised kernel. On 480x640 frames
it equals cv2.resize exactly at 448 px and in all but ~0.05% of pixels (by one grey level) at
1280 px (tests/data/test_device_letterbox.py). A float bilinear resize differed in ~10% of pixels
and cost 0.08 AP (docs/gpu.md).
"""

from __future__ import annotations

from typing import Any

from kapao_edge.data.letterbox import PAD_COLOR, LetterboxGeometry


def letterbox_into(frame: Any, geometry: LetterboxGeometry, out: Any) -> None:
    """Write ``frame`` (h0, w0, 3) uint8 BGR, letterboxed by ``geometry``, into ``out`` (H, W, 3) uint8.

    ``frame`` and ``out`` are torch tensors on one device; nothing else is allocated on the host.
    """
    resized_h, resized_w = geometry.resized_hw
    out_h, out_w = geometry.output_hw
    if tuple(out.shape) != (out_h, out_w, 3):
        raise ValueError(f"output buffer is {tuple(out.shape)}, the letterbox needs ({out_h}, {out_w}, 3)")
    out.fill_(PAD_COLOR[0])  # grey border (114 in every channel)
    target = out[geometry.top : geometry.top + resized_h, geometry.left : geometry.left + resized_w]  # (h, w, 3)
    if tuple(frame.shape[:2]) == (resized_h, resized_w):
        target.copy_(frame)
        return
    target.copy_(resize_linear_uint8(frame, resized_h, resized_w))


def _taps(source: int, target: int, device: Any) -> tuple[Any, Any, Any, Any]:
    """OpenCV's INTER_LINEAR taps for one axis: two source indices and 11-bit weights per output index."""
    import torch

    scale = source / target
    position = ((torch.arange(target, dtype=torch.float64, device=device) + 0.5) * scale - 0.5).to(torch.float32)
    first = torch.floor(position)
    fraction = position - first
    first = first.to(torch.int64)
    fraction = torch.where(first < 0, torch.zeros_like(fraction), fraction)
    first = first.clamp(min=0)
    last = first >= source - 1
    fraction = torch.where(last, torch.zeros_like(fraction), fraction)
    first = torch.where(last, torch.full_like(first, source - 1), first)
    weight0 = torch.round((1 - fraction) * 2048).to(torch.int32)  # saturate_cast<short>(w * 2^11)
    return first, (first + 1).clamp(max=source - 1), weight0, 2048 - weight0


def resize_linear_uint8(frame: Any, height: int, width: int) -> Any:
    """(h0, w0, 3) uint8 -> (height, width, 3) uint8, as cv2.resize(..., INTER_LINEAR) computes it."""
    import torch

    x0, x1, wx0, wx1 = _taps(int(frame.shape[1]), width, frame.device)
    y0, y1, wy0, wy1 = _taps(int(frame.shape[0]), height, frame.device)
    pixels = frame.to(torch.int32)  # (h0, w0, 3)
    rows = pixels[:, x0] * wx0[None, :, None] + pixels[:, x1] * wx1[None, :, None]  # (h0, width, 3), x 2^11
    top, bottom = rows[y0] >> 4, rows[y1] >> 4  # (height, width, 3)
    mixed = ((wy0[:, None, None] * top) >> 16) + ((wy1[:, None, None] * bottom) >> 16)
    return ((mixed + 2) >> 2).clamp_(0, 255).to(torch.uint8)  # (height, width, 3)
