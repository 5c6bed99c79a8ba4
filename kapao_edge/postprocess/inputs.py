"""Checks shared by every post-processing backend, so all of them refuse the same inputs the same way."""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from kapao_edge.errors import InputError


def num_keypoints_of(num_outputs: int) -> int:
    """K from a prediction row length No = 3K + 6 (box 4, objectness 1, classes 1 + K, coordinates 2K)."""
    if num_outputs < 9 or (num_outputs - 6) % 3:
        raise InputError(
            f"prediction rows have {num_outputs} columns; a KAPAO head gives 3K + 6 for K >= 1 keypoints "
            "(57 for COCO, 48 for CrowdPose)"
        )
    return (num_outputs - 6) // 3


def check_predictions(predictions: Any, *, widen_half: bool = True) -> np.ndarray:
    """(B, N, No) C-contiguous float32 (or float16 when ``widen_half`` is False); other dtypes are refused.

    The C++ backend reads float16 in place, so the facade keeps it narrow for that path.
    """
    if not isinstance(predictions, np.ndarray):
        raise InputError(
            f"predictions must be a NumPy array, got {type(predictions).__name__} "
            "(for a torch tensor pass tensor.detach().cpu().numpy())"
        )
    if predictions.ndim != 3:
        raise InputError(f"predictions must have shape (B, N, No), got {predictions.shape}")
    if predictions.dtype == np.float16:
        if widen_half:
            predictions = predictions.astype(np.float32)
    elif predictions.dtype != np.float32:
        raise InputError(f"predictions must be float32 or float16, got dtype {predictions.dtype}")
    num_keypoints_of(predictions.shape[2])
    return np.ascontiguousarray(predictions)


def check_hw(size: Any, what: str) -> tuple[int, int]:
    """A (h, w) pair of positive integers."""
    try:
        height, width = size
    except (TypeError, ValueError):
        raise InputError(f"{what} must be an (h, w) pair, got {size!r}") from None
    pair = []
    for value in (height, width):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise InputError(f"{what} must hold two positive integers, got {size!r}")
        if not math.isfinite(value) or value != int(value) or value <= 0:
            raise InputError(f"{what} must hold two positive integers, got {size!r}")
        pair.append(int(value))
    return pair[0], pair[1]


def check_original_hws(original_hws: Any, batch_size: int) -> list[tuple[int, int]]:
    """One (h, w) per image; a single pair is shared by the whole batch."""
    if isinstance(original_hws, np.ndarray):
        original_hws = original_hws.tolist()
    if not isinstance(original_hws, Sequence) or isinstance(original_hws, (str, bytes)):
        raise InputError(f"original_hws must be (h, w) pairs, one per image, got {original_hws!r}")
    if len(original_hws) == 2 and not any(isinstance(v, (Sequence, np.ndarray)) for v in original_hws):
        return [check_hw(original_hws, "original_hws")] * batch_size
    if len(original_hws) != batch_size:
        raise InputError(f"original_hws has {len(original_hws)} sizes for a batch of {batch_size} images")
    return [check_hw(hw, f"original_hws[{i}]") for i, hw in enumerate(original_hws)]


def check_inputs(
    predictions: Any, input_hw: Any, original_hws: Any, *, widen_half: bool = True
) -> tuple[np.ndarray, tuple[int, int], list[tuple[int, int]]]:
    """Validated, normalised ``(predictions, input_hw, original_hws)``."""
    predictions = check_predictions(predictions, widen_half=widen_half)
    return predictions, check_hw(input_hw, "input_hw"), check_original_hws(original_hws, predictions.shape[0])
