"""Fixtures for post-processing tests: the official reference cases and a prediction-row builder."""

from __future__ import annotations

import json
from typing import Callable

import numpy as np
import pytest

from kapao_edge.postprocess import PostprocessConfig

NUM_POSTPROCESS_CASES = 18


@pytest.fixture(scope="session")
def postprocess_cases(reference_dir) -> list[dict]:
    """Each case: its JSON entry plus its arrays under the short names (``pred``, ``poses``, ...)."""
    cases = json.loads((reference_dir / "postprocess_cases.json").read_text())
    assert len(cases) == NUM_POSTPROCESS_CASES
    with np.load(reference_dir / "postprocess_cases.npz") as arrays:
        for case in cases:
            prefix = case["case"] + "_"
            case.update({key[len(prefix):]: arrays[key] for key in arrays.files if key.startswith(prefix)})
    return cases


@pytest.fixture(scope="session")
def case_config() -> Callable[..., PostprocessConfig]:
    """The PostprocessConfig holding a reference case's thresholds."""

    def build(case: dict, **changes) -> PostprocessConfig:
        names = ("conf_thres", "iou_thres", "conf_thres_kp", "iou_thres_kp", "conf_thres_kp_person", "overwrite_tol")
        return PostprocessConfig(**{name: case[name] for name in names}, **changes)

    return build


@pytest.fixture(scope="session")
def prediction_row() -> Callable[..., np.ndarray]:
    """Build one decoded prediction row [cx, cy, w, h, obj, cls_0..cls_K, k0x, k0y, ...] (float32)."""

    def build(
        box: tuple[float, float, float, float],
        obj: float,
        class_id: int,
        *,
        num_keypoints: int = 17,
        class_prob: float = 1.0,
        keypoints: np.ndarray | None = None,
    ) -> np.ndarray:
        row = np.zeros(3 * num_keypoints + 6, np.float32)
        row[:4] = box
        row[4] = obj
        row[5 + class_id] = class_prob
        if keypoints is not None:
            row[6 + num_keypoints :] = np.asarray(keypoints, np.float32).reshape(-1)
        return row

    return build
