"""The letterbox in torch, so a GPU pipeline uploads the camera's uint8 frame and resizes it on the device.

Geometry comes from ``letterbox_geometry`` (the same arithmetic as the OpenCV letterbox). The resize
is bilinear with half-pixel centres, as OpenCV's INTER_LINEAR, computed in float32 and rounded;
OpenCV works in 11-bit fixed point, so a pixel may differ by one grey level (measured in
tests/data/test_device_letterbox.py and docs/gpu.md).
"""

from __future__ import annotations

from typing import Any

from kapao_edge.data.letterbox import PAD_COLOR, LetterboxGeometry


def letterbox_into(frame: Any, geometry: LetterboxGeometry, out: Any) -> None:
    """Write ``frame`` (h0, w0, 3) uint8 BGR, letterboxed by ``geometry``, into ``out`` (H, W, 3) uint8.

    ``frame`` and ``out`` are torch tensors on one device; nothing else is allocated on the host.
    """
    import torch
    import torch.nn.functional as F

    resized_h, resized_w = geometry.resized_hw
    out_h, out_w = geometry.output_hw
    if tuple(out.shape) != (out_h, out_w, 3):
        raise ValueError(f"output buffer is {tuple(out.shape)}, the letterbox needs ({out_h}, {out_w}, 3)")
    out.fill_(PAD_COLOR[0])  # grey border (114 in every channel)
    target = out[geometry.top : geometry.top + resized_h, geometry.left : geometry.left + resized_w]  # (h, w, 3)
    if tuple(frame.shape[:2]) == (resized_h, resized_w):
        target.copy_(frame)
        return
    chw = frame.permute(2, 0, 1).unsqueeze(0).to(torch.float32)  # (1, 3, h0, w0)
    resized = F.interpolate(chw, size=(resized_h, resized_w), mode="bilinear", align_corners=False, antialias=False)
    target.copy_(resized[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8))  # (h, w, 3)
