"""Type stub of the compiled C++ post-processor (cpp_postproc/python/bindings.cpp)."""

from typing import Any, Literal, Sequence

import numpy as np
import numpy.typing as npt

def postprocess(
    predictions: npt.NDArray[np.float32] | npt.NDArray[np.float16],
    input_hw: tuple[int, int],
    original_hws: Sequence[tuple[int, int]],
    *,
    conf_thres: float = 0.001,
    iou_thres: float = 0.65,
    conf_thres_kp: float = 0.2,
    iou_thres_kp: float = 0.25,
    conf_thres_kp_person: float = 0.3,
    overwrite_tol: float = 50.0,
    max_det: int = 300,
    max_nms: int = 30000,
    use_kp_dets: bool = True,
    compat: Literal["official", "default"] = "default",
) -> list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]]:
    """One (keypoints (P, K, 3), boxes (P, 4), scores (P,)) tuple per image of a (B, N, No) batch.

    ``predictions`` must be C-contiguous, aligned, native-endian float32 or float16; it is read in
    place with the GIL released. TypeError for another dtype, ValueError for a bad shape, layout or
    setting.
    """

def default_config() -> dict[str, Any]:
    """``kapao::Config{}`` field by field (equals ``PostprocessConfig()``)."""

def val_config() -> dict[str, Any]:
    """``kapao::val_config()`` field by field (equals ``PostprocessConfig.official_val()``)."""

def demo_config() -> dict[str, Any]:
    """``kapao::demo_config()`` field by field (equals ``PostprocessConfig.official_demo()``)."""
