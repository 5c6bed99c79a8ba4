"""compat="default": fusion on unclipped coordinates, every keypoint clipped at the end; edge inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from kapao_edge.postprocess import PostprocessConfig, cpp_available, postprocess

K = 17


@pytest.fixture(params=["numpy", "cpp"])
def backend(request) -> str:
    """Every behaviour here is part of the spec, so both backends must show it."""
    if request.param == "cpp" and not cpp_available():
        pytest.skip("the C++ post-processor is not built")
    return request.param


def _inside(points_xy: np.ndarray, original_hw) -> bool:
    height, width = original_hw
    x, y = points_xy[..., 0], points_xy[..., 1]
    return bool(((x >= 0) & (x <= width) & (y >= 0) & (y <= height)).all())


@pytest.mark.parametrize("index", range(18))
def test_default_keeps_official_persons_and_clips_everything(postprocess_cases, case_config, index, backend):
    case = postprocess_cases[index]
    hw = case["original_hw"]
    default = postprocess(case["pred"], case["input_hw"], hw, case_config(case), backend=backend)
    official = postprocess(case["pred"], case["input_hw"], hw, case_config(case, compat="official"), backend=backend)
    for mine, theirs in zip(default, official):
        assert len(mine) == len(theirs)
        np.testing.assert_array_equal(mine.scores, theirs.scores)
        assert _inside(mine.keypoints[..., :2], hw) and _inside(mine.boxes.reshape(-1, 2, 2), hw)
        assert np.abs(mine.boxes - theirs.boxes).max(initial=0) <= 0.5  # the same boxes, not rounded
        assert (mine.keypoints[..., 2] >= 0).all()


@pytest.fixture()
def border_scene(prediction_row) -> np.ndarray:
    """One person whose nose (keypoint 0) and left shoulder (keypoint 5) were predicted 30 px left of a
    128 x 128 frame, and a nose keypoint object 10 px inside the left border."""
    keypoints = np.full((K, 2), 64.0, np.float32)
    keypoints[0] = (-30, 64)
    keypoints[5] = (-30, 90)
    person = prediction_row((50, 64, 60, 100), 0.9, 0, keypoints=keypoints)
    nose = prediction_row((10, 64, 20, 20), 0.8, 1)
    return np.stack([person, nose])[None]  # (1, 2, 57)


def test_fusion_on_unclipped_coordinates_differs_from_official(border_scene, backend):
    config = PostprocessConfig.official_demo()  # overwrite_tol 25 px
    official = postprocess(border_scene, (128, 128), (128, 128), config.replace(compat="official"), backend=backend)[0]
    default = postprocess(border_scene, (128, 128), (128, 128), config, backend=backend)[0]
    # official: the nose is clipped to x = 0 first, lands 10 px from the keypoint object and takes it over
    np.testing.assert_allclose(official.keypoints[0, 0], [10, 64, 0.8], rtol=1e-6)
    # default: the nose really is 40 px away, beyond the tolerance: no fusion, then clipped into the frame
    np.testing.assert_allclose(default.keypoints[0, 0], [0, 64, 0])
    # the official clip quirk: only keypoints 0 and 1 are clipped, the shoulder stays outside the frame
    np.testing.assert_allclose(official.keypoints[0, 5, :2], [-30, 90])
    np.testing.assert_allclose(default.keypoints[0, 5, :2], [0, 90])
    np.testing.assert_allclose(official.boxes[0], [20, 14, 80, 114])
    np.testing.assert_array_equal(official.scores, default.scores)


def test_without_keypoint_objects_nothing_is_fused(border_scene, backend):
    config = PostprocessConfig.official_demo(use_kp_dets=False, compat="official")
    poses = postprocess(border_scene, (128, 128), (128, 128), config, backend=backend)[0]
    assert (poses.keypoints[..., 2] == 0).all()


def test_scale_back_uses_the_letterbox_geometry(prediction_row, backend):
    """A 320 x 256 input of a 640 x 480 image (gain 0.5, 8 px top padding) maps back by (x, y - 8) / 0.5."""
    keypoints = np.tile(np.float32([[100, 58]]), (K, 1))
    person = prediction_row((160, 128, 64, 100), 0.9, 0, keypoints=keypoints)
    poses = postprocess(person[None, None], (256, 320), (480, 640), PostprocessConfig(), backend=backend)[0]
    np.testing.assert_allclose(poses.boxes[0], [256, 140, 384, 340])
    np.testing.assert_allclose(poses.keypoints[0, :, :2], np.tile([[200, 100]], (K, 1)))


@pytest.mark.parametrize("compat", ["default", "official"])
def test_non_finite_rows_follow_the_spec(prediction_row, compat, backend):
    rows = [
        prediction_row((50, 50, 20, 40), np.nan, 0),  # NaN objectness: dropped
        prediction_row((50, 50, np.inf, 40), 0.9, 0),  # infinite width: dropped
        prediction_row((50, 50, 20, 40), np.inf, 0),  # infinite objectness: dropped
    ]
    all_nan_classes = prediction_row((50, 50, 20, 40), 0.9, 0)
    all_nan_classes[5 : 6 + K] = np.nan  # only NaN class scores: dropped
    rows.append(all_nan_classes)
    nan_keypoints = np.full((K, 2), 30.0, np.float32)
    nan_keypoints[3] = np.nan
    partly_nan = prediction_row((200, 100, 40, 80), 0.8, 0, keypoints=nan_keypoints)
    partly_nan[5 + 1] = np.nan  # a NaN score for class 1 counts as -inf: the row stays a person
    rows.append(partly_nan)
    rows.append(prediction_row((30, 30, 4, 4), 0.9, 4))  # keypoint 3 object, nearest pose keypoint is NaN
    predictions = np.stack(rows)[None]  # (1, 6, 57)
    config = PostprocessConfig(compat=compat)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # defined behaviour: no RuntimeWarning either
        poses = postprocess(predictions, (256, 256), (256, 256), config, backend=backend)[0]
    assert len(poses) == 1
    np.testing.assert_allclose(poses.scores, [0.8])
    assert np.isnan(poses.keypoints[0, 3, :2]).all() and poses.keypoints[0, 3, 2] == 0
    finite = np.delete(poses.keypoints[0], 3, axis=0)
    assert np.isfinite(finite).all()


@pytest.mark.parametrize("compat", ["default", "official"])
@pytest.mark.parametrize("num_rows", [0, 50])
def test_empty_predictions_give_empty_poses(compat, num_rows, backend):
    predictions = np.zeros((2, num_rows, 3 * 14 + 6), np.float32)  # zero rows are padding
    results = postprocess(predictions, (640, 640), [(480, 640), (640, 480)], PostprocessConfig(compat=compat),
                          backend=backend)
    assert len(results) == 2
    for poses in results:
        assert len(poses) == 0
        assert poses.keypoints.shape == (0, 14, 3) and poses.boxes.shape == (0, 4) and poses.scores.shape == (0,)
        assert poses.keypoints.dtype == poses.boxes.dtype == poses.scores.dtype == np.float32
