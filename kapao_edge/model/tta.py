"""Test-time augmentation: several rescaled / mirrored passes mapped back and concatenated.

Reproduces the official augmented inference (KAPAO reference, section 6), so the concatenated rows
feed the usual NMS and fusion unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

from kapao_edge.errors import InputError
from kapao_edge.presets import Preset

PAD_VALUE = 0.447  # the official padding value (ImageNet mean grey)
_FLIP_LR = 3  # the official encoding: the dimension that is flipped (W of B, C, H, W)


def predict_tta(
    model: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    scales: Sequence[float] = (0.8, 1.0, 1.2),
    flips: Sequence[str | int | None] = (None, "lr", None),
    *,
    preset: Preset | None = None,
    max_stride: int | None = None,
) -> torch.Tensor:
    """(B, 3, H, W) -> (B, sum of N per pass, No), every pass in the original image's pixels.

    ``flips`` entries: None, or "lr" / 3 for a left-right mirror. ``preset`` and ``max_stride`` default
    to the model's own (any callable returning decoded predictions works when both are given).
    """
    if len(scales) != len(flips):
        raise InputError(f"TTA needs one flip per scale, got {len(scales)} scales and {len(flips)} flips")
    preset = preset if preset is not None else getattr(model, "preset", None)
    max_stride = max_stride if max_stride is not None else getattr(model, "max_stride", None)
    if preset is None or max_stride is None:
        raise InputError("predict_tta needs the preset and max stride: pass a KapaoModel or give both")
    height, width = images.shape[-2:]
    passes = []
    for scale, flip in zip(scales, flips):
        mirrored = _is_lr_flip(flip)
        x = images.flip(-1) if mirrored else images
        pred = model(scale_images(x, float(scale), max_stride))  # (B, N_i, No)
        passes.append(descale(pred, float(scale), mirrored, width, preset))
    return torch.cat(passes, 1)


def scale_images(images: torch.Tensor, scale: float, max_stride: int) -> torch.Tensor:
    """Bilinear resize by ``scale``, then pad right/bottom up to a multiple of ``max_stride``."""
    if scale == 1.0:
        return images
    h, w = images.shape[-2:]
    new_h, new_w = int(h * scale), int(w * scale)
    resized = F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False)
    padded_h, padded_w = (math.ceil(v * scale / max_stride) * max_stride for v in (h, w))
    return F.pad(resized, [0, padded_w - new_w, 0, padded_h - new_h], value=PAD_VALUE)


def descale(pred: torch.Tensor, scale: float, mirrored: bool, width: int, preset: Preset) -> torch.Tensor:
    """Map one pass's (B, N, No) rows back to the unscaled, unmirrored image."""
    k = preset.num_keypoints
    num_coords = 2 * k
    box = pred[..., :4] / scale  # (B, N, 4) cx, cy, w, h
    scores = pred[..., 4 : pred.shape[-1] - num_coords]  # (B, N, 2 + K) obj, person, keypoint classes
    keypoints = (pred[..., -num_coords:] / scale).unflatten(-1, (k, 2))  # (B, N, K, 2)
    if mirrored:
        order = torch.tensor(preset.kp_flip, device=pred.device)
        box = torch.cat([width - box[..., :1], box[..., 1:]], -1)
        # columns 0 and 1 are obj and person; the keypoint classes follow in keypoint order
        scores = torch.cat([scores[..., :2], scores[..., 2:].index_select(-1, order)], -1)
        keypoints = torch.stack([width - keypoints[..., 0], keypoints[..., 1]], -1).index_select(-2, order)
    return torch.cat([box, scores, keypoints.flatten(-2)], -1)


def _is_lr_flip(flip: str | int | None) -> bool:
    if flip is None or flip == -1:
        return False
    if flip in ("lr", _FLIP_LR):
        return True
    raise InputError(f"unsupported TTA flip {flip!r}: use None or 'lr' (3 in the official encoding)")
