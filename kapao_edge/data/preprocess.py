"""From decoded BGR images to the network input: (B, 3, H, W) float32 RGB in [0, 1].

Two paths, as in the official code: ``prepare`` letterboxes the original image (image demo,
deployment); ``prepare_val`` first resizes the long side to ``imgsz`` and then letterboxes without
enlarging (validation dataloader). The path changes pixels, and so accuracy, slightly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from kapao_edge.data.letterbox import as_hw, letterbox
from kapao_edge.errors import InputError

MAX_STRIDE = 64  # the P6 output grid: every input side must be a multiple of it


@dataclass(frozen=True)
class LetterboxInfo:
    """Geometry needed to map network-input coordinates back onto the original image."""

    original_hw: tuple[int, int]
    input_hw: tuple[int, int]
    ratio: tuple[float, float]  # (w, h) scale from the original image to the network input
    pad: tuple[float, float]  # (left, top) padding in network-input pixels


def check_input_size(imgsz: int | tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a network input size, refusing sizes the P6 grid cannot tile."""
    height, width = as_hw(imgsz, "input size")
    if height % MAX_STRIDE or width % MAX_STRIDE:
        raise InputError(
            f"input size {height}x{width} is not a multiple of {MAX_STRIDE} (the largest model stride); "
            f"try {math.ceil(height / MAX_STRIDE) * MAX_STRIDE}x{math.ceil(width / MAX_STRIDE) * MAX_STRIDE}"
        )
    return height, width


def as_bgr(image: np.ndarray) -> np.ndarray:
    """A 3-channel uint8 BGR view of a grayscale, BGR or BGRA image."""
    if not isinstance(image, np.ndarray) or image.size == 0:
        raise InputError(f"expected a non-empty image array, got {getattr(image, 'shape', type(image).__name__)}")
    if image.dtype != np.uint8:
        raise InputError(f"expected a uint8 image, got dtype {image.dtype}")
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise InputError(f"expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, got shape {image.shape}")


def to_tensor_batch(images_bgr_letterboxed: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Stack equally shaped letterboxed BGR images into a contiguous (B, 3, H, W) float32 RGB batch."""
    images = list(images_bgr_letterboxed)
    if not images:
        raise InputError("to_tensor_batch needs at least one image")
    shapes = {image.shape for image in images}
    if len(shapes) != 1:
        raise InputError(f"all images of a batch must share one shape, got {sorted(shapes)}")
    batch = np.stack([as_bgr(image) for image in images])  # (B, H, W, 3) uint8 BGR
    rgb_chw = batch[..., ::-1].transpose(0, 3, 1, 2)  # (B, 3, H, W) uint8 RGB, a strided view
    return np.ascontiguousarray(rgb_chw, dtype=np.float32) / np.float32(255.0)  # (B, 3, H, W) float32


def prepare(
    image_bgr: np.ndarray, imgsz: int | tuple[int, int], *, stride: int = MAX_STRIDE, auto: bool = True
) -> tuple[np.ndarray, LetterboxInfo]:
    """Letterbox one original image for inference (the official image-demo path)."""
    target_hw = check_input_size(imgsz)
    image_bgr = as_bgr(image_bgr)
    padded, ratio, pad = letterbox(image_bgr, target_hw, stride=stride, auto=auto)
    chw = to_tensor_batch([padded])[0]  # (3, H, W)
    info = LetterboxInfo(
        original_hw=(int(image_bgr.shape[0]), int(image_bgr.shape[1])),
        input_hw=(int(padded.shape[0]), int(padded.shape[1])),
        ratio=ratio,
        pad=pad,
    )
    return chw, info


def resize_long_side(image_bgr: np.ndarray, imgsz: int) -> np.ndarray:
    """Resize so the long side is ``imgsz`` (INTER_AREA to shrink, INTER_LINEAR to enlarge), as val does."""
    if isinstance(imgsz, bool) or not isinstance(imgsz, (int, np.integer)) or imgsz <= 0:
        raise InputError(f"imgsz must be a positive int, got {imgsz!r}")
    if not isinstance(image_bgr, np.ndarray) or image_bgr.ndim not in (2, 3) or image_bgr.size == 0:
        raise InputError(f"expected a non-empty image array, got {getattr(image_bgr, 'shape', image_bgr)!r}")
    height, width = image_bgr.shape[:2]
    scale = imgsz / max(height, width)
    if scale == 1:
        return image_bgr
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    # int() truncates, as the official loader does; round() would differ by a pixel on some sizes.
    return cv2.resize(image_bgr, (int(width * scale), int(height * scale)), interpolation=interpolation)


def rect_batch_shape(
    original_hws: Sequence[tuple[int, int]], imgsz: int, *, stride: int = MAX_STRIDE, pad: float = 0.0
) -> tuple[int, int]:
    """The official ``--rect`` batch shape: the batch's aspect-ratio rectangle rounded up to ``stride``."""
    aspect = np.array([h / w for h, w in original_hws], dtype=np.float64)  # (B,) h / w
    if aspect.size == 0:
        raise InputError("rect_batch_shape needs at least one image size")
    relative_hw = (1.0, 1.0)
    if aspect.max() < 1:  # all landscape: height shrinks to the tallest image
        relative_hw = (float(aspect.max()), 1.0)
    elif aspect.min() > 1:  # all portrait: width shrinks to the widest image
        relative_hw = (1.0, float(1 / aspect.min()))
    height, width = (int(math.ceil(r * imgsz / stride + pad)) * stride for r in relative_hw)
    return height, width


def prepare_val(
    image_bgr: np.ndarray, imgsz: int, *, batch_hw: tuple[int, int] | None = None
) -> tuple[np.ndarray, LetterboxInfo]:
    """The official validation path: long side to ``imgsz``, then letterbox to the batch shape, never enlarging."""
    target_hw = check_input_size(batch_hw if batch_hw is not None else imgsz)
    image_bgr = as_bgr(image_bgr)
    resized = resize_long_side(image_bgr, imgsz)
    padded, (ratio_w, ratio_h), pad = letterbox(resized, target_hw, auto=False, scaleup=False)
    chw = to_tensor_batch([padded])[0]  # (3, H, W)
    height0, width0 = image_bgr.shape[:2]
    info = LetterboxInfo(
        original_hw=(int(height0), int(width0)),
        input_hw=(int(padded.shape[0]), int(padded.shape[1])),
        ratio=(ratio_w * resized.shape[1] / width0, ratio_h * resized.shape[0] / height0),
        pad=pad,
    )
    return chw, info
