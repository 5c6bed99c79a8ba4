"""compat="official" against results of the official val.run_nms + val.post_process_batch."""

from __future__ import annotations

import numpy as np
import pytest

from kapao_edge.postprocess import postprocess
from kapao_edge.postprocess.reference import run_nms

CASES = range(18)
TOL = dict(rtol=1e-4, atol=1e-4)


def _concat(results, attribute: str) -> np.ndarray:
    return np.concatenate([getattr(poses, attribute) for poses in results])


@pytest.mark.parametrize("index", CASES)
def test_poses_match_official(postprocess_cases, case_config, index):
    case = postprocess_cases[index]
    config = case_config(case, compat="official")
    results = postprocess(case["pred"], case["input_hw"], case["original_hw"], config, backend="numpy")

    assert len(results) == 2
    assert sum(len(poses) for poses in results) == case["n_poses"] == len(case["scores"])
    image_index = np.concatenate([np.full(len(poses), i) for i, poses in enumerate(results)])
    np.testing.assert_array_equal(image_index, case["image_index"])
    np.testing.assert_allclose(_concat(results, "scores"), case["scores"], **TOL)
    np.testing.assert_allclose(_concat(results, "boxes"), case["bboxes"], **TOL)
    np.testing.assert_allclose(_concat(results, "keypoints"), case["poses"], **TOL)
    for poses in results:
        assert poses.keypoints.dtype == poses.boxes.dtype == poses.scores.dtype == np.float32


def _to_original(xy: np.ndarray, input_hw, original_hw) -> np.ndarray:
    gain = min(input_hw[0] / original_hw[0], input_hw[1] / original_hw[1])
    pad = np.float32([(input_hw[1] - original_hw[1] * gain) / 2, (input_hw[0] - original_hw[0] * gain) / 2])
    return (xy - pad) / np.float32(gain)


def _clip_first_two_points(rows: np.ndarray, original_hw) -> None:
    """The official clip, in place: columns 0..3 as x1, y1, x2, y2."""
    rows[:, [0, 2]] = rows[:, [0, 2]].clip(0, original_hw[1])
    rows[:, [1, 3]] = rows[:, [1, 3]].clip(0, original_hw[0])


@pytest.mark.parametrize("index", CASES)
def test_nms_matches_official_detections(postprocess_cases, case_config, index):
    """The fixture's detections were saved after post_process_batch rescaled them in place; redo that here.

    Person rows: box and keypoints scaled, the first four numbers of each part clipped. Keypoint-object
    rows: box scaled and clipped, but only for images where fusion ran (persons above
    conf_thres_kp_person and at least one keypoint object).
    """
    case = postprocess_cases[index]
    config = case_config(case, compat="official")
    input_hw, original_hw = case["input_hw"], case["original_hw"]
    num_keypoints = (case["pred"].shape[2] - 6) // 3
    for image in range(2):
        person_dets, kp_dets = run_nms(case["pred"][image], config)
        expected_persons = case["person_dets"][case["person_dets_image"] == image]
        expected_kps = case["kp_dets"][case["kp_dets_image"] == image]
        assert person_dets.shape == expected_persons.shape and kp_dets.shape == expected_kps.shape

        persons = person_dets.copy()
        persons[:, :4] = _to_original(persons[:, :4].reshape(-1, 2, 2), input_hw, original_hw).reshape(-1, 4)
        persons[:, 6:] = _to_original(persons[:, 6:].reshape(-1, num_keypoints, 2), input_hw, original_hw).reshape(
            len(persons), 2 * num_keypoints
        )
        _clip_first_two_points(persons[:, :4], original_hw)
        _clip_first_two_points(persons[:, 6:], original_hw)
        np.testing.assert_allclose(persons, expected_persons, **TOL)

        kps = kp_dets.copy()
        fused = len(persons) and len(kps) and (persons[:, 4] > np.float32(config.conf_thres_kp_person)).any()
        if fused:
            kps[:, :4] = _to_original(kps[:, :4].reshape(-1, 2, 2), input_hw, original_hw).reshape(-1, 4)
            _clip_first_two_points(kps[:, :4], original_hw)
        np.testing.assert_allclose(kps, expected_kps, **TOL)
        assert (np.diff(kp_dets[:, 4]) <= 0).all() and (np.diff(person_dets[:, 4]) <= 0).all()


def test_cases_cover_both_nms_paths(postprocess_cases, case_config):
    combined = [case_config(case).combined_nms for case in postprocess_cases]
    assert any(combined) and not all(combined)
