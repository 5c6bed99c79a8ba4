"""The C++ backend against the official fixtures, plus its input contract (dtypes, layouts, threads)."""

from __future__ import annotations

import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from kapao_edge.errors import InputError
from kapao_edge.postprocess import PostprocessConfig, postprocess
from kapao_edge.postprocess import cpp

extension = pytest.importorskip("kapao_edge._postproc", reason="C++ post-processor not built")

THRESHOLD_KEYS = ("conf_thres", "iou_thres", "conf_thres_kp", "iou_thres_kp", "conf_thres_kp_person",
                  "overwrite_tol")
CASE_NAMES = [f"case{i:02d}" for i in range(18)]


@pytest.fixture(scope="module")
def cases(reference_dir: Path) -> tuple[dict, dict]:
    meta = {case["case"]: case for case in json.loads((reference_dir / "postprocess_cases.json").read_text())}
    with np.load(reference_dir / "postprocess_cases.npz") as arrays:
        return meta, {key: arrays[key] for key in arrays.files}


def official_config(case: dict) -> PostprocessConfig:
    return PostprocessConfig(**{key: case[key] for key in THRESHOLD_KEYS}, compat="official")


def concatenated(results: list) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    keypoints = np.concatenate([poses.keypoints for poses in results])  # (P, K, 3)
    boxes = np.concatenate([poses.boxes for poses in results])  # (P, 4)
    scores = np.concatenate([poses.scores for poses in results])  # (P,)
    image_index = np.concatenate([np.full(len(poses), i) for i, poses in enumerate(results)])  # (P,)
    return keypoints, boxes, scores, image_index


def assert_same_poses(actual: list, expected: list) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert got.keypoints.dtype == got.boxes.dtype == got.scores.dtype == np.float32
        np.testing.assert_array_equal(got.keypoints, want.keypoints)
        np.testing.assert_array_equal(got.boxes, want.boxes)
        np.testing.assert_array_equal(got.scores, want.scores)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_cpp_reproduces_official_case(cases: tuple[dict, dict], name: str) -> None:
    meta, arrays = cases
    case = meta[name]
    predictions = arrays[f"{name}_pred"]  # (2, N, No) float32
    results = postprocess(predictions, case["input_hw"], case["original_hw"], official_config(case), backend="cpp")

    keypoints, boxes, scores, image_index = concatenated(results)
    assert len(scores) == case["n_poses"] == len(arrays[f"{name}_scores"])
    np.testing.assert_array_equal(image_index, arrays[f"{name}_image_index"])
    np.testing.assert_allclose(scores, arrays[f"{name}_scores"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(boxes, arrays[f"{name}_bboxes"], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(keypoints, arrays[f"{name}_poses"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["case00", "case06", "case11", "case15"])
@pytest.mark.parametrize("compat", ["official", "default"])
def test_cpp_equals_numpy_reference_bitwise(cases: tuple[dict, dict], name: str, compat: str) -> None:
    meta, arrays = cases
    case = meta[name]
    config = official_config(case).replace(compat=compat)
    args = (arrays[f"{name}_pred"], case["input_hw"], case["original_hw"], config)
    assert_same_poses(postprocess(*args, backend="cpp"), postprocess(*args, backend="numpy"))


@pytest.mark.parametrize("name", ["case03", "case06", "case14"])
def test_float16_predictions_are_read_in_place(cases: tuple[dict, dict], name: str) -> None:
    meta, arrays = cases
    case = meta[name]
    half = arrays[f"{name}_pred"].astype(np.float16)  # (2, N, No)
    config = official_config(case)
    from_half = cpp.postprocess_cpp(half, case["input_hw"], case["original_hw"], config)
    widened = postprocess(half.astype(np.float32), case["input_hw"], case["original_hw"], config, backend="numpy")
    assert sum(len(poses) for poses in from_half) > 0
    assert_same_poses(from_half, widened)


def _predictions(batch: int = 1, rows: int = 8, outputs: int = 57) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((batch, rows, outputs), dtype=np.float32)


@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.uint16, np.bool_])
def test_other_dtypes_are_refused_not_converted(dtype: type) -> None:
    predictions = _predictions().astype(dtype)
    with pytest.raises(TypeError, match="float32 or float16"):
        extension.postprocess(predictions, (640, 640), [(480, 640)])
    with pytest.raises(InputError, match="float32 or float16"):
        cpp.postprocess_cpp(predictions, (640, 640), (480, 640))


def test_layouts_that_would_need_a_copy_are_refused() -> None:
    predictions = _predictions(rows=16)
    with pytest.raises(ValueError, match="C-contiguous"):
        extension.postprocess(predictions[:, ::2], (640, 640), [(480, 640)])
    with pytest.raises(ValueError, match="C-contiguous"):
        extension.postprocess(np.asfortranarray(predictions), (640, 640), [(480, 640)])
    with pytest.raises(TypeError, match="native byte order"):
        extension.postprocess(predictions.astype(">f4"), (640, 640), [(480, 640)])
    unaligned = np.frombuffer(b"\0" + predictions.tobytes(), dtype=np.float32, offset=1).reshape(predictions.shape)
    with pytest.raises(ValueError, match="aligned"):
        extension.postprocess(unaligned, (640, 640), [(480, 640)])
    with pytest.raises(InputError, match="C-contiguous"):
        cpp.postprocess_cpp(predictions[:, ::2], (640, 640), (480, 640))


def test_bad_shapes_and_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\(B, N, No\)"):
        extension.postprocess(_predictions()[0], (640, 640), [(480, 640)])
    with pytest.raises(ValueError, match="3K \\+ 6"):
        extension.postprocess(_predictions(outputs=50), (640, 640), [(480, 640)])
    with pytest.raises(ValueError, match="2 sizes for a batch of 1"):
        extension.postprocess(_predictions(), (640, 640), [(480, 640), (480, 640)])
    with pytest.raises(ValueError, match="compat"):
        extension.postprocess(_predictions(), (640, 640), [(480, 640)], compat="nearest")
    with pytest.raises(ValueError, match="iou_thres"):
        extension.postprocess(_predictions(), (640, 640), [(480, 640)], iou_thres=1.5)
    with pytest.raises(ValueError, match="original image size"):
        extension.postprocess(_predictions(), (640, 640), [(0, 640)])


def test_empty_batch_and_empty_rows() -> None:
    assert extension.postprocess(np.zeros((0, 10, 57), np.float32), (640, 640), []) == []
    (keypoints, boxes, scores), = extension.postprocess(np.zeros((1, 0, 48), np.float32), (640, 640), [(480, 640)])
    assert keypoints.shape == (0, 14, 3) and boxes.shape == (0, 4) and scores.shape == (0,)


def test_threads_share_nothing(cases: tuple[dict, dict]) -> None:
    meta, arrays = cases
    jobs = [(arrays[f"{name}_pred"], meta[name]) for name in ("case00", "case09", "case06", "case15") * 4]

    def run(job: tuple[np.ndarray, dict]) -> list:
        predictions, case = job
        return postprocess(predictions, case["input_hw"], case["original_hw"], official_config(case), backend="cpp")

    serial = [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(run, jobs))
    for got, want in zip(parallel, serial):
        assert_same_poses(got, want)


def test_is_available_is_false_when_the_extension_cannot_import(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "kapao_edge._postproc", None)  # makes the import raise ImportError
    cpp._extension.cache_clear()
    try:
        assert cpp.is_available() is False
        with pytest.raises(InputError, match="not built"):
            cpp.postprocess_cpp(_predictions(), (640, 640), (480, 640))
    finally:
        cpp._extension.cache_clear()
    monkeypatch.undo()
    assert cpp.is_available() is True
