"""C++ backend: the compiled ``kapao_edge._postproc`` (built from cpp_postproc/ by ``pip install``).

It implements the same specification as the NumPy reference, reads float32 or float16 predictions in
place (no copy, no widening) and releases the GIL while it computes. The extension is optional:
``is_available()`` says whether it imports, and the facade falls back to NumPy when it does not.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType
from typing import Any

import numpy as np

from kapao_edge.errors import InputError
from kapao_edge.postprocess.config import Poses, PostprocessConfig
from kapao_edge.postprocess.inputs import check_hw, check_original_hws, num_keypoints_of

__all__ = ["is_available", "postprocess_cpp"]


@functools.lru_cache(maxsize=1)
def _extension() -> ModuleType | None:
    try:
        return importlib.import_module("kapao_edge._postproc")
    except (ImportError, OSError):  # not built, or built for another Python / platform
        return None


def is_available() -> bool:
    """True when the compiled extension imports; never raises."""
    return _extension() is not None


def postprocess_cpp(
    predictions: np.ndarray,
    input_hw: tuple[int, int],
    original_hws: Any,
    config: PostprocessConfig | None = None,
) -> list[Poses]:
    """Poses for each image of a (B, N, No) batch, computed by the C++ core.

    ``predictions`` must be C-contiguous float32 or float16: converting here would hide a copy of
    the whole output (23 MB at 1280 px) inside a call that is meant to take well under a millisecond.
    """
    extension = _extension()
    if extension is None:
        raise InputError("the C++ post-processor (kapao_edge._postproc) is not built")
    config = config if config is not None else PostprocessConfig()
    if not isinstance(predictions, np.ndarray):
        raise InputError(f"predictions must be a NumPy array, got {type(predictions).__name__}")
    if predictions.ndim != 3:
        raise InputError(f"predictions must have shape (B, N, No), got {predictions.shape}")
    num_keypoints_of(predictions.shape[2])
    input_size = check_hw(input_hw, "input_hw")
    original_sizes = check_original_hws(original_hws, predictions.shape[0])
    try:
        results = extension.postprocess(
            predictions,
            input_size,
            original_sizes,
            conf_thres=config.conf_thres,
            iou_thres=config.iou_thres,
            conf_thres_kp=config.conf_thres_kp,
            iou_thres_kp=config.iou_thres_kp,
            conf_thres_kp_person=config.conf_thres_kp_person,
            overwrite_tol=config.overwrite_tol,
            max_det=config.max_det,
            max_nms=config.max_nms,
            use_kp_dets=config.use_kp_dets,
            compat=config.compat,
        )
    except (TypeError, ValueError) as error:  # dtype, layout or setting the core refuses
        raise InputError(str(error)) from None
    return [Poses(keypoints=keypoints, boxes=boxes, scores=scores) for keypoints, boxes, scores in results]
