"""Image augmentations that keep person boxes and keypoints consistent with the pixels.

Geometry works on ``boxes`` (P, 4) xyxy and ``keypoints`` (P, K, 3) in pixels; a keypoint that a
transform pushes out of the visible image becomes invisible (x = y = v = 0). Every random draw comes
from the ``numpy.random.Generator`` passed in, so a seed fixes the whole sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kapao_edge.data.letterbox import PAD_COLOR


@dataclass
class Sample:
    """An image (BGR uint8) with its persons in the image's pixel coordinates."""

    image: np.ndarray  # (H, W, 3)
    boxes: np.ndarray  # (P, 4)
    keypoints: np.ndarray  # (P, K, 3)

    def scaled(
        self, factor_xy: tuple[float, float], offset_xy: tuple[float, float] = (0.0, 0.0)
    ) -> tuple[np.ndarray, np.ndarray]:
        """Boxes and keypoints after ``p * factor + offset`` per axis (invisible keypoints stay zero)."""
        factor = np.asarray(factor_xy, dtype=np.float32)
        offset = np.asarray(offset_xy, dtype=np.float32)
        boxes = self.boxes * np.tile(factor, 2) + np.tile(offset, 2)  # (P, 4)
        keypoints = self.keypoints.copy()  # (P, K, 3)
        visible = keypoints[..., 2] > 0
        keypoints[..., :2] = np.where(visible[..., None], keypoints[..., :2] * factor + offset, 0.0)
        return boxes.astype(np.float32), keypoints


def hide_outside(keypoints: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """Zero the keypoints that fall outside the half-open window [x0, x1) x [y0, y1)."""
    kx, ky = keypoints[..., 0], keypoints[..., 1]
    outside = (kx < x0) | (ky < y0) | (kx >= x1) | (ky >= y1)  # (P, K)
    keypoints = keypoints.copy()
    keypoints[outside] = 0.0
    return keypoints


def mosaic4(tiles: list[Sample], size: int, rng: np.random.Generator) -> Sample:
    """Four images around a random centre on a (2*size, 2*size) grey canvas (the YOLOv5 mosaic).

    Boxes are clipped to the part of their tile that is visible, keypoints outside it hidden.
    """
    canvas = np.full((2 * size, 2 * size, 3), PAD_COLOR[0], dtype=np.uint8)
    centre_x, centre_y = (int(rng.uniform(size // 2, 2 * size - size // 2)) for _ in range(2))
    all_boxes, all_keypoints = [], []
    for corner, tile in enumerate(tiles):
        h, w = tile.image.shape[:2]
        # destination window on the canvas; the tile touches the centre from its corner
        x0 = max(centre_x - w, 0) if corner in (0, 2) else centre_x
        x1 = centre_x if corner in (0, 2) else min(centre_x + w, 2 * size)
        y0 = max(centre_y - h, 0) if corner in (0, 1) else centre_y
        y1 = centre_y if corner in (0, 1) else min(centre_y + h, 2 * size)
        # matching source window: the tile's edge that touches the centre is kept
        sx0 = w - (x1 - x0) if corner in (0, 2) else 0
        sy0 = h - (y1 - y0) if corner in (0, 1) else 0
        canvas[y0:y1, x0:x1] = tile.image[sy0:sy0 + (y1 - y0), sx0:sx0 + (x1 - x0)]

        boxes, keypoints = tile.scaled((1.0, 1.0), (x0 - sx0, y0 - sy0))
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(x0, x1)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(y0, y1)
        all_boxes.append(boxes)
        all_keypoints.append(hide_outside(keypoints, x0, y0, x1, y1))
    return Sample(canvas, np.concatenate(all_boxes), np.concatenate(all_keypoints))


def random_affine(
    sample: Sample,
    rng: np.random.Generator,
    *,
    out_size: tuple[int, int],
    degrees: float = 0.0,
    translate: float = 0.1,
    scale: float = 0.5,
) -> tuple[Sample, np.ndarray]:
    """Random rotation/scale/translation into an ``out_size`` (h, w) image.

    Returns the warped sample and a (P,) mask of persons worth keeping as pose objects (the YOLOv5
    box-candidate rule); hidden persons' visible keypoints may still serve as keypoint objects.
    """
    in_h, in_w = sample.image.shape[:2]
    out_h, out_w = out_size
    centre = np.array([[1, 0, -in_w / 2], [0, 1, -in_h / 2], [0, 0, 1]], dtype=np.float64)
    gain = rng.uniform(1 - scale, 1 + scale)
    rotate = np.eye(3)
    rotate[:2] = cv2.getRotationMatrix2D(center=(0, 0), angle=rng.uniform(-degrees, degrees), scale=gain)
    shift = np.eye(3)
    shift[0, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_w
    shift[1, 2] = rng.uniform(0.5 - translate, 0.5 + translate) * out_h
    matrix = shift @ rotate @ centre  # (3, 3) input pixels -> output pixels

    image = cv2.warpAffine(sample.image, matrix[:2], dsize=(out_w, out_h), borderValue=PAD_COLOR)

    num_persons = len(sample.boxes)
    corners = sample.boxes[:, [0, 1, 2, 3, 0, 3, 2, 1]].reshape(num_persons * 4, 2)  # (4P, 2)
    corners = _apply(matrix, corners).reshape(num_persons, 4, 2)
    boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1)  # (P, 4)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, out_w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, out_h)

    keypoints = sample.keypoints.copy()  # (P, K, 3)
    visible = keypoints[..., 2] > 0
    keypoints[..., :2] = _apply(matrix, keypoints[..., :2].reshape(-1, 2)).reshape(keypoints.shape[:2] + (2,))
    keypoints[~visible] = 0.0
    keypoints = hide_outside(keypoints, 0, 0, out_w, out_h)

    keep = box_candidates(sample.boxes * gain, boxes)
    return Sample(image, boxes.astype(np.float32), keypoints.astype(np.float32)), keep


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:2, :2].T + matrix[:2, 2]  # (N, 2)


def box_candidates(before: np.ndarray, after: np.ndarray, min_side: float = 2.0, max_aspect: float = 20.0,
                   min_area_ratio: float = 0.1) -> np.ndarray:
    """Boxes that stay big enough and keep enough of their (scaled) area after a transform."""
    w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    eps = 1e-16
    aspect = np.maximum(w1 / (h1 + eps), h1 / (w1 + eps))
    return (w1 > min_side) & (h1 > min_side) & (w1 * h1 / (w0 * h0 + eps) > min_area_ratio) & (aspect < max_aspect)


def augment_hsv(image: np.ndarray, rng: np.random.Generator, hue: float, saturation: float, value: float) -> None:
    """Random hue/saturation/value gains, in place (lookup tables, as YOLOv5 does)."""
    if not (hue or saturation or value):
        return
    gains = rng.uniform(-1, 1, 3) * [hue, saturation, value] + 1
    h, s, v = cv2.split(cv2.cvtColor(image, cv2.COLOR_BGR2HSV))
    levels = np.arange(256, dtype=np.float64)
    lut_h = ((levels * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(levels * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(levels * gains[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    cv2.cvtColor(merged, cv2.COLOR_HSV2BGR, dst=image)


def resize_long_side(image: np.ndarray, size: int, augment: bool) -> tuple[np.ndarray, tuple[float, float]]:
    """Scale so the longest side is ``size``; returns the image and the exact (x, y) scale factors.

    Shrinking uses INTER_AREA when not augmenting, as the official loader does.
    """
    h, w = image.shape[:2]
    ratio = size / max(h, w)
    if ratio == 1:
        return image, (1.0, 1.0)
    new_w, new_h = max(int(w * ratio), 1), max(int(h * ratio), 1)
    interp = cv2.INTER_AREA if ratio < 1 and not augment else cv2.INTER_LINEAR
    image = cv2.resize(image, (new_w, new_h), interpolation=interp)
    return image, (new_w / w, new_h / h)
