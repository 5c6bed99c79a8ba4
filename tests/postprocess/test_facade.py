"""The public ``postprocess`` entry point: input checks and backend choice."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

import kapao_edge.postprocess as facade
from kapao_edge.errors import InputError
from kapao_edge.postprocess import PostprocessConfig, cpp_available, postprocess


@pytest.fixture()
def scene(prediction_row) -> np.ndarray:
    keypoints = np.tile(np.float32([[60, 60]]), (17, 1))
    person = prediction_row((64, 64, 40, 80), 0.9, 0, keypoints=keypoints)
    rows = np.stack([person, prediction_row((60, 60, 8, 8), 0.8, 1)])
    return np.stack([rows, rows * 0])  # (2, 2, 57): a person in image 0, only padding in image 1


@pytest.mark.parametrize(
    "predictions, message",
    [
        (np.zeros((10, 57), np.float32), r"shape \(B, N, No\)"),
        (np.zeros((1, 10, 58), np.float32), "3K \\+ 6"),
        (np.zeros((1, 10, 6), np.float32), "3K \\+ 6"),
        (np.zeros((1, 10, 57), np.int32), "dtype int32"),
        (np.zeros((1, 10, 57), np.float64), "dtype float64"),
        (np.zeros((1, 10, 57), np.float32).tolist(), "NumPy array"),
    ],
)
def test_bad_predictions_raise_input_error(predictions, message):
    with pytest.raises(InputError, match=message):
        postprocess(predictions, (128, 128), (128, 128), backend="numpy")


@pytest.mark.parametrize(
    "input_hw, original_hws, message",
    [
        ((128, 128), [(128, 128)] * 3, "3 sizes for a batch of 2"),
        ((128, 128), [(128, 128)], "1 sizes for a batch of 2"),
        ((128, 0), (128, 128), "input_hw"),
        ((128, 128), [(128, 128), (-5, 10)], r"original_hws\[1\]"),
        ((128, 128), [(128, 128), (12.5, 10)], r"original_hws\[1\]"),
        ((128, 128), "128x128", "original_hws"),
        (128, (128, 128), "input_hw"),
    ],
)
def test_bad_sizes_raise_input_error(scene, input_hw, original_hws, message):
    with pytest.raises(InputError, match=message):
        postprocess(scene, input_hw, original_hws, backend="numpy")


def test_bad_backend_or_config(scene):
    with pytest.raises(InputError, match="unknown post-processing backend"):
        postprocess(scene, (128, 128), (128, 128), backend="gpu")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="PostprocessConfig"):
        postprocess(scene, (128, 128), (128, 128), {"conf_thres": 0.1}, backend="numpy")  # type: ignore[arg-type]


def test_one_size_pair_is_shared_by_the_batch(scene):
    shared = postprocess(scene, (128, 128), (256, 256), backend="numpy")
    listed = postprocess(scene, (128, 128), np.array([[256, 256], [256, 256]]), backend="numpy")
    assert [len(p) for p in shared] == [1, 0]
    np.testing.assert_array_equal(shared[0].keypoints, listed[0].keypoints)
    np.testing.assert_allclose(shared[0].boxes[0], [88, 48, 168, 208])  # scaled by 2


def test_float16_is_widened_explicitly(scene):
    half = scene.astype(np.float16)
    from_half = postprocess(half, (128, 128), (128, 128), backend="numpy")
    from_widened = postprocess(half.astype(np.float32), (128, 128), (128, 128), backend="numpy")
    np.testing.assert_array_equal(from_half[0].keypoints, from_widened[0].keypoints)
    assert from_half[0].keypoints.dtype == np.float32


def test_non_contiguous_input_gives_the_same_result(scene):
    strided = np.concatenate([scene, scene], axis=1)[:, ::2]  # (2, 2, 57) view with a step
    assert not strided.flags["C_CONTIGUOUS"]
    expected = postprocess(np.ascontiguousarray(strided), (128, 128), (128, 128), backend="numpy")
    got = postprocess(strided, (128, 128), (128, 128), backend="numpy")
    np.testing.assert_array_equal(got[0].keypoints, expected[0].keypoints)


@pytest.fixture()
def without_extension(monkeypatch):
    """Make ``kapao_edge._postproc`` fail to import, as in a source checkout without a build."""
    from kapao_edge.postprocess import cpp

    monkeypatch.setitem(sys.modules, "kapao_edge._postproc", None)
    cpp._extension.cache_clear()
    yield
    monkeypatch.undo()
    cpp._extension.cache_clear()


def test_cpp_backend_missing_is_explained(scene, without_extension):
    assert not cpp_available()
    with pytest.raises(InputError, match="not built.*backend='numpy'"):
        postprocess(scene, (128, 128), (128, 128), backend="cpp")


def test_auto_falls_back_to_numpy_with_one_warning(scene, monkeypatch, without_extension):
    assert not cpp_available()
    monkeypatch.setattr(facade, "_fallback_warned", False)
    with pytest.warns(RuntimeWarning, match="C\\+\\+ post-processor not built") as record:
        first = postprocess(scene, (128, 128), (128, 128))
    assert len(record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = postprocess(scene, (128, 128), (128, 128))
    numpy_result = postprocess(scene, (128, 128), (128, 128), backend="numpy")
    for result in (first, second):
        np.testing.assert_array_equal(result[0].keypoints, numpy_result[0].keypoints)


@pytest.mark.parametrize("compat", ["default", "official"])
def test_cpp_backend_agrees_with_numpy_on_reference_cases(postprocess_cases, case_config, compat):
    if not cpp_available():
        pytest.skip("the C++ post-processor is not built")
    for case in postprocess_cases:
        config = case_config(case, compat=compat)
        expected = postprocess(case["pred"], case["input_hw"], case["original_hw"], config, backend="numpy")
        got = postprocess(case["pred"], case["input_hw"], case["original_hw"], config, backend="cpp")
        for mine, theirs in zip(got, expected):
            np.testing.assert_array_equal(mine.scores, theirs.scores)
            np.testing.assert_array_equal(mine.boxes, theirs.boxes)
            np.testing.assert_array_equal(mine.keypoints, theirs.keypoints)


def test_public_names():
    import kapao_edge

    assert kapao_edge.PostprocessConfig is PostprocessConfig
    assert kapao_edge.Poses is facade.Poses
    assert kapao_edge.letterbox.__module__ == "kapao_edge.data.letterbox"
