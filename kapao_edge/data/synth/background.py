"""Cluttered backgrounds, foreground objects and camera effects (light, blur, noise).

Clutter is what keeps a detector honest: without it "any coloured blob" would be a person. It uses
lines, boxes, discs and polygons, never a body plan, so nothing in it should be called a person.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kapao_edge.data.synth.render import Occluder


@dataclass(frozen=True)
class BackgroundStyle:
    min_shapes: int = 4
    max_shapes: int = 18
    texture_noise: float = 6.0  # std of fine grain painted into the background
    p_occluder: float = 0.15  # chance of 1-2 objects in front of the people
    max_noise: float = 7.0  # std of sensor noise, sampled in [0, max_noise]
    p_blur: float = 0.3
    max_blur_sigma: float = 1.3
    light_range: tuple[float, float] = (0.65, 1.3)  # gain across the frame


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))  # type: ignore[return-value]


def _base(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Gradient, blotchy low-frequency field, or wall above floor."""
    kind = rng.integers(3)
    if kind == 0:
        a, b = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
        angle = rng.uniform(0, 2 * np.pi)
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        t = xs * np.cos(angle) + ys * np.sin(angle)
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)  # (H, W) in [0, 1]
        image = a + (b - a) * t[..., None]  # (H, W, 3)
    elif kind == 1:
        cells = int(rng.integers(2, 7))
        small = rng.uniform(0, 255, size=(cells, cells, 3)).astype(np.float32)
        tint = np.array(_colour(rng), np.float32)
        small = 0.5 * small + 0.5 * tint  # blotches around one hue, not a rainbow
        image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    else:
        horizon = int(rng.uniform(0.3, 0.75) * height)
        image = np.empty((height, width, 3), np.float32)
        image[:horizon] = _colour(rng)
        floor_top, floor_bottom = np.array(_colour(rng), np.float32), np.array(_colour(rng), np.float32)
        t = np.linspace(0, 1, height - horizon, dtype=np.float32)[:, None, None]
        image[horizon:] = floor_top + (floor_bottom - floor_top) * t
    return np.clip(image, 0, 255)


def _clutter(rng: np.random.Generator, image: np.ndarray, count: int) -> None:
    height, width = image.shape[:2]
    size = min(height, width)
    for _ in range(count):
        colour = _colour(rng)
        kind = rng.integers(6)
        x, y = int(rng.integers(width)), int(rng.integers(height))
        extent = int(rng.uniform(0.03, 0.4) * size) + 1
        if kind == 0:
            x2, y2 = x + int(rng.integers(-extent, extent)), y + int(rng.integers(-extent, extent))
            thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, 5))
            cv2.rectangle(image, (x, y), (x2, y2), colour, thickness, cv2.LINE_AA)
        elif kind == 1:
            thickness = -1 if rng.random() < 0.6 else int(rng.integers(1, 5))
            cv2.circle(image, (x, y), max(1, extent // 2), colour, thickness, cv2.LINE_AA)
        elif kind == 2:
            axes = (max(1, extent // 2), max(1, int(extent * rng.uniform(0.1, 0.6))))
            cv2.ellipse(image, (x, y), axes, float(rng.uniform(0, 180)), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == 3:
            x2, y2 = x + int(rng.integers(-2 * extent, 2 * extent)), y + int(rng.integers(-2 * extent, 2 * extent))
            cv2.line(image, (x, y), (x2, y2), colour, int(rng.integers(1, max(2, size // 40))), cv2.LINE_AA)
        elif kind == 4:
            steps = rng.integers(-extent // 2 - 1, extent // 2 + 1, size=(int(rng.integers(3, 7)), 2))
            points = (np.array([x, y]) + np.cumsum(steps, axis=0)).astype(np.int32)  # (N, 2)
            cv2.polylines(image, [points], False, colour, int(rng.integers(1, 4)), cv2.LINE_AA)
        else:
            corners = np.array([x, y]) + rng.integers(-extent, extent + 1, size=(int(rng.integers(3, 7)), 2))
            hull = cv2.convexHull(corners.astype(np.int32))
            cv2.fillPoly(image, [hull], colour, cv2.LINE_AA)


def sample_background(rng: np.random.Generator, height: int, width: int, style: BackgroundStyle) -> np.ndarray:
    """A (H, W, 3) uint8 BGR background."""
    image = _base(rng, height, width)
    if style.texture_noise > 0:
        image += rng.normal(0, style.texture_noise, size=(height, width, 1)).astype(np.float32)
    image = np.clip(image, 0, 255).astype(np.uint8)
    _clutter(rng, image, int(rng.integers(style.min_shapes, style.max_shapes + 1)))
    return image


def sample_occluders(rng: np.random.Generator, height: int, width: int, style: BackgroundStyle) -> list[Occluder]:
    """Posts, bars and slabs standing in front of the people, sometimes."""
    if rng.random() >= style.p_occluder:
        return []
    occluders = []
    for _ in range(int(rng.integers(1, 3))):
        if rng.random() < 0.5:  # vertical post
            x = rng.uniform(0, width)
            half = rng.uniform(0.015, 0.06) * width
            polygon = np.array([[x - half, -1], [x + half, -1], [x + half, height], [x - half, height]])
        else:  # horizontal bar or table edge
            y = rng.uniform(0.3, 1.0) * height
            thick = rng.uniform(0.03, 0.15) * height
            polygon = np.array([[-1, y], [width, y], [width, y + thick], [-1, y + thick]])
        occluders.append(Occluder(polygon=polygon, colour=_colour(rng)))
    return occluders


def camera_effects(rng: np.random.Generator, image: np.ndarray, style: BackgroundStyle) -> np.ndarray:
    """Uneven light, colour cast, contrast, blur and sensor noise on a finished (H, W, 3) uint8 image."""
    height, width = image.shape[:2]
    out = image.astype(np.float32)
    low, high = style.light_range
    g0, g1 = rng.uniform(low, 1.0), rng.uniform(1.0, high)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    t = xs * np.cos(angle) + ys * np.sin(angle)
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    gain = (g0 + (g1 - g0) * t)[..., None] * rng.uniform(0.9, 1.1, size=3).astype(np.float32)  # (H, W, 3)
    contrast = rng.uniform(0.75, 1.2)
    out = (out * gain - 128.0) * contrast + 128.0 + rng.uniform(-20, 20)
    if rng.random() < style.p_blur:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.4, style.max_blur_sigma))
    sigma = rng.uniform(0, style.max_noise)
    if sigma > 0:
        out += rng.normal(0, sigma, size=out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
