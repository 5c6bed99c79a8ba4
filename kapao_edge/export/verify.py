"""Numerical check of an exported file: ONNX Runtime against the torch reference on real-looking frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Difference:
    max_abs: float
    max_rel: float  # max_abs / the largest |reference| value


def compare(actual: np.ndarray, expected: np.ndarray) -> Difference:
    actual64 = np.asarray(actual, dtype=np.float64)
    expected64 = np.asarray(expected, dtype=np.float64)
    if actual64.shape != expected64.shape:
        return Difference(float("inf"), float("inf"))
    max_abs = float(np.abs(actual64 - expected64).max(initial=0.0))
    scale = max(float(np.abs(expected64).max(initial=0.0)), 1e-12)
    return Difference(max_abs, max_abs / scale)


def sample_batch(shape: list[int] | tuple[int, ...], preset: str = "coco", seed: int = 0) -> np.ndarray:
    """(B, 3, H, W) float32: procedural multi-person scenes (4:3 frames) letterboxed to (H, W)."""
    from kapao_edge.data import prepare
    from kapao_edge.data.synth import generate_scene

    batch, _, height, width = shape
    images = []
    for index in range(batch):
        scene = generate_scene(np.random.default_rng(seed + index), preset, imgsz=(480, 640))
        chw, _ = prepare(scene.image, (height, width), auto=False)  # (3, H, W)
        images.append(chw)
    return np.stack(images)  # (B, 3, H, W)


def verify_onnx(reference: Any, onnx_path: str | Path, shape: list[int], *, seed: int = 0) -> Difference:
    """Run the same letterboxed frames through torch (``reference``) and ONNX Runtime (CPU)."""
    import onnxruntime as ort
    import torch

    images = sample_batch(shape, reference.preset.name, seed)  # (B, 3, H, W)
    with torch.inference_mode():
        expected = reference(torch.from_numpy(images)).numpy()  # (B, N, No)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    actual = session.run(None, {session.get_inputs()[0].name: images})[0]  # (B, N, No)
    return compare(actual, expected)
