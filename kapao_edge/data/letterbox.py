"""Letterbox resize: scale an image to fit the network input and pad the rest with grey.

Reproduces the official KAPAO (YOLOv5) letterbox pixel for pixel, including its rounding of the
padding split, because the scale-back step in post-processing assumes exactly that geometry.
"""

from __future__ import annotations

import cv2
import numpy as np

from kapao_edge.errors import InputError

PAD_COLOR = (114, 114, 114)


def as_hw(size: int | tuple[int, int] | list[int], what: str = "size") -> tuple[int, int]:
    """Normalise an int or (h, w) pair to a (h, w) tuple of positive ints."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        height = width = int(size)
    elif isinstance(size, (str, bytes)):
        raise InputError(f"{what} must be an int or an (h, w) pair, got {size!r}")
    else:
        try:
            height, width = (int(v) for v in size)  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise InputError(f"{what} must be an int or an (h, w) pair, got {size!r}") from None
    if height <= 0 or width <= 0:
        raise InputError(f"{what} must be positive, got {(height, width)}")
    return height, width


def letterbox(
    image_bgr: np.ndarray,
    new_shape: int | tuple[int, int],
    *,
    stride: int = 64,
    auto: bool = True,
    scaleup: bool = True,
    scale_fill: bool = False,
    color: tuple[int, int, int] = PAD_COLOR,
) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """Resize keeping the aspect ratio, then pad to ``new_shape`` (or to a stride multiple when ``auto``).

    Returns ``(image, (ratio_w, ratio_h), (pad_w, pad_h))`` where the pads are the left/top offsets
    (half of the total padding, possibly fractional), as the official code returns them.
    """
    if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim not in (2, 3) or image_bgr.size == 0:
        shape = getattr(image_bgr, "shape", type(image_bgr).__name__)
        raise InputError(f"letterbox expects a non-empty (H, W) or (H, W, C) image array, got {shape}")
    if stride <= 0:
        raise InputError(f"stride must be positive, got {stride}")
    target_h, target_w = as_hw(new_shape, "new_shape")
    height, width = image_bgr.shape[:2]

    ratio = min(target_h / height, target_w / width)
    if not scaleup:  # only shrink: enlarging would invent detail the model never saw
        ratio = min(ratio, 1.0)
    ratio_wh = (ratio, ratio)

    unpadded_w, unpadded_h = int(round(width * ratio)), int(round(height * ratio))
    pad_w: float = target_w - unpadded_w
    pad_h: float = target_h - unpadded_h
    if auto:  # smallest stride-multiple rectangle instead of the full target
        pad_w, pad_h = pad_w % stride, pad_h % stride
    elif scale_fill:  # stretch to the target, no padding
        pad_w, pad_h = 0.0, 0.0
        unpadded_w, unpadded_h = target_w, target_h
        ratio_wh = (target_w / width, target_h / height)
    pad_w /= 2
    pad_h /= 2

    if (width, height) != (unpadded_w, unpadded_h):
        image_bgr = cv2.resize(image_bgr, (unpadded_w, unpadded_h), interpolation=cv2.INTER_LINEAR)
    # An odd total padding puts the extra pixel at the bottom/right (the +-0.1 breaks round-half-even ties).
    top, bottom = int(round(pad_h - 0.1)), int(round(pad_h + 0.1))
    left, right = int(round(pad_w - 0.1)), int(round(pad_w + 0.1))
    padded = cv2.copyMakeBorder(image_bgr, top, bottom, left, right, cv2.BORDER_CONSTANT, value=color)
    return padded, (float(ratio_wh[0]), float(ratio_wh[1])), (float(pad_w), float(pad_h))
