"""Letterbox resize: scale an image to fit the network input and pad the rest with grey.

Reproduces the official KAPAO (YOLOv5) letterbox pixel for pixel, including its rounding of the
padding split, because the scale-back step in post-processing assumes exactly that geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class LetterboxGeometry:
    """Where an (h0, w0) image lands in the network input: resized size, border widths, scale."""

    resized_hw: tuple[int, int]
    top: int
    bottom: int
    left: int
    right: int
    ratio: tuple[float, float]  # (w, h) scale from the original image
    pad: tuple[float, float]  # (left, top) as the official code returns it (possibly fractional)

    @property
    def output_hw(self) -> tuple[int, int]:
        return self.resized_hw[0] + self.top + self.bottom, self.resized_hw[1] + self.left + self.right


def letterbox_geometry(
    original_hw: tuple[int, int],
    new_shape: int | tuple[int, int],
    *,
    stride: int = 64,
    auto: bool = True,
    scaleup: bool = True,
    scale_fill: bool = False,
) -> LetterboxGeometry:
    """The official letterbox's arithmetic alone, shared by the host (OpenCV) and device letterboxes."""
    if stride <= 0:
        raise InputError(f"stride must be positive, got {stride}")
    target_h, target_w = as_hw(new_shape, "new_shape")
    height, width = original_hw

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
    # An odd total padding puts the extra pixel at the bottom/right (the +-0.1 breaks round-half-even ties).
    return LetterboxGeometry(
        resized_hw=(unpadded_h, unpadded_w),
        top=int(round(pad_h - 0.1)),
        bottom=int(round(pad_h + 0.1)),
        left=int(round(pad_w - 0.1)),
        right=int(round(pad_w + 0.1)),
        ratio=(float(ratio_wh[0]), float(ratio_wh[1])),
        pad=(float(pad_w), float(pad_h)),
    )


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
    height, width = image_bgr.shape[:2]
    geometry = letterbox_geometry(
        (height, width), new_shape, stride=stride, auto=auto, scaleup=scaleup, scale_fill=scale_fill
    )
    resized_h, resized_w = geometry.resized_hw
    if (height, width) != (resized_h, resized_w):
        image_bgr = cv2.resize(image_bgr, (resized_w, resized_h), interpolation=cv2.INTER_LINEAR)
    padded = cv2.copyMakeBorder(
        image_bgr, geometry.top, geometry.bottom, geometry.left, geometry.right, cv2.BORDER_CONSTANT, value=color
    )
    return padded, geometry.ratio, geometry.pad
