"""Property tests: the C++ core and the NumPy reference agree on random predictions, and the C++
core survives hostile ones.

Predictions mix what real outputs look like (mostly low objectness, clusters of person rows and
keypoint objects) with what breaks implementations: scores on and next to the thresholds, exact
duplicate rows (equal scores, so tie-breaking decides), NaN and +-Inf, all-zero padding, N = 0,
and boxes wider than the 4096 px class offset.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kapao_edge.postprocess import PostprocessConfig, postprocess
from kapao_edge.postprocess import cpp

pytest.importorskip("kapao_edge._postproc", reason="C++ post-processor not built")

PROPERTY_SETTINGS = settings(
    derandomize=True, deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow]
)
THRESHOLDS = np.array([0.001, 0.2, 0.25, 0.3, 0.45, 0.5, 0.65, 0.7], dtype=np.float32)
GEOMETRIES = [((640, 640), (480, 640)), ((640, 512), (1080, 860)), ((1280, 1280), (720, 1280)),
              ((256, 320), (100, 100)), ((640, 640), (3000, 2000))]


def near_thresholds(rng: np.random.Generator, size: int) -> np.ndarray:
    """Scores on a threshold or one float32 ulp either side of it."""
    base = rng.choice(THRESHOLDS, size)  # (size,)
    step = rng.integers(-1, 2, size)  # (size,) -1, 0, +1 ulp
    return np.where(step < 0, np.nextafter(base, np.float32(0)),
                    np.where(step > 0, np.nextafter(base, np.float32(1)), base)).astype(np.float32)


def synthetic_predictions(
    seed: int, batch: int, rows: int, num_keypoints: int, input_hw: tuple[int, int], style: str,
    nonfinite_rate: float = 0.0,
) -> np.ndarray:
    """(B, N, 3K + 6) float32 decoded predictions; ``style`` picks the score distribution."""
    rng = np.random.default_rng(seed)
    height, width = input_hw
    num_classes = num_keypoints + 1
    num_outputs = 3 * num_keypoints + 6
    pred = np.zeros((batch, rows, num_outputs), np.float32)  # (B, N, No)
    if rows == 0:
        return pred
    shape = (batch, rows)
    centre_x = rng.uniform(-40, width + 40, shape)  # (B, N)
    centre_y = rng.uniform(-40, height + 40, shape)
    box_w = rng.uniform(1, 0.6 * width, shape)
    box_h = rng.uniform(1, 0.8 * height, shape)
    # Clusters: a few people, each with many overlapping person rows and keypoint-object rows.
    people = rng.integers(1, 6)
    cluster = rng.integers(-1, people, shape)  # (B, N) -1 = background
    person_x = rng.uniform(0, width, people)
    person_y = rng.uniform(0, height, people)
    person_w = rng.uniform(20, 0.4 * width, people)
    person_h = rng.uniform(40, 0.7 * height, people)
    in_cluster = cluster >= 0
    c = cluster[in_cluster]
    centre_x[in_cluster] = person_x[c] + rng.normal(0, 4, c.size)
    centre_y[in_cluster] = person_y[c] + rng.normal(0, 4, c.size)
    box_w[in_cluster] = person_w[c] * rng.uniform(0.85, 1.15, c.size)
    box_h[in_cluster] = person_h[c] * rng.uniform(0.85, 1.15, c.size)
    if style == "huge":  # wider than the class offset: classes interact, grouping must fall back
        wide = rng.random(shape) < 0.3
        box_w[wide] = rng.uniform(3000, 12000, wide.sum())
        box_h[wide] = rng.uniform(3000, 12000, wide.sum())
    pred[..., 0], pred[..., 1], pred[..., 2], pred[..., 3] = centre_x, centre_y, box_w, box_h

    if style == "levels":  # few distinct values: many exactly equal scores
        obj = rng.choice(np.array([0.0, 0.0005, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0], np.float32), shape)
        cls = rng.choice(np.array([0.0, 0.25, 0.5, 1.0], np.float32), (batch, rows, num_classes))
    elif style == "thresholds":
        obj = near_thresholds(rng, batch * rows).reshape(shape)
        cls = np.where(rng.random((batch, rows, num_classes)) < 0.5, 1.0,
                       rng.random((batch, rows, num_classes))).astype(np.float32)
    else:  # realistic: mostly low objectness, high inside clusters
        obj = (rng.random(shape) ** 6 * 0.05).astype(np.float32)
        obj[in_cluster] = rng.uniform(0.05, 0.95, c.size)
        cls = (rng.random((batch, rows, num_classes)) ** 4).astype(np.float32)
    # Person rows peak on class 0; the rest of the cluster are keypoint objects (small boxes).
    best = np.where(rng.random(shape) < 0.4, 0, rng.integers(1, num_classes, shape))  # (B, N)
    np.put_along_axis(cls, best[..., None], rng.uniform(0.6, 1.0, shape)[..., None].astype(np.float32), axis=2)
    is_kp_object = in_cluster & (best > 0)
    small = rng.uniform(0.03, 0.08, is_kp_object.sum()) * max(height, width)
    pred[..., 2][is_kp_object] = small
    pred[..., 3][is_kp_object] = small
    pred[..., 4] = obj
    pred[..., 5 : 5 + num_classes] = cls
    # Keypoints spread over the box; keypoint objects sit near them.
    offsets = rng.normal(0, 0.3, (batch, rows, num_keypoints, 2))  # (B, N, K, 2)
    keypoints = np.stack([centre_x, centre_y], -1)[:, :, None] + offsets * np.stack([box_w, box_h], -1)[:, :, None]
    pred[..., 5 + num_classes :] = keypoints.reshape(batch, rows, 2 * num_keypoints)

    # Exact duplicates of earlier rows (same score, same box) and all-zero padding.
    duplicates = rng.integers(0, rows, (batch, rows // 8 + 1))
    targets = rng.integers(0, rows, (batch, rows // 8 + 1))
    for b in range(batch):
        pred[b, targets[b]] = pred[b, duplicates[b]]
    pred[rng.random(shape) < 0.1] = 0.0
    if nonfinite_rate:
        hit = rng.random(pred.shape) < nonfinite_rate
        pred[hit] = rng.choice(np.array([np.nan, np.inf, -np.inf], np.float32), hit.sum())
    return pred


def assert_backends_agree(predictions: np.ndarray, input_hw, original_hws, config: PostprocessConfig) -> None:
    from_cpp = postprocess(predictions, input_hw, original_hws, config, backend="cpp")
    from_numpy = postprocess(predictions, input_hw, original_hws, config, backend="numpy")
    assert len(from_cpp) == len(from_numpy)
    for got, want in zip(from_cpp, from_numpy):
        assert got.keypoints.shape == want.keypoints.shape  # same count, same K
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got.boxes, want.boxes, rtol=1e-5, atol=1e-5, equal_nan=True)
        np.testing.assert_allclose(got.keypoints, want.keypoints, rtol=1e-5, atol=1e-5, equal_nan=True)


threshold_values = st.sampled_from([0.0, 0.001, 0.2, 0.25, 0.3, 0.45, 0.5, 0.65, 0.7, 1.0])
configs = st.builds(
    PostprocessConfig,
    conf_thres=threshold_values,
    iou_thres=st.sampled_from([0.0, 0.25, 0.45, 0.65, 1.0]),
    conf_thres_kp=threshold_values,
    iou_thres_kp=st.sampled_from([0.0, 0.25, 0.45, 0.65, 1.0]),
    conf_thres_kp_person=threshold_values,
    overwrite_tol=st.sampled_from([0.0, 25.0, 50.0, 1e6]),
    max_det=st.sampled_from([300, 1, 5, 40]),
    max_nms=st.sampled_from([30000, 3, 50]),
    use_kp_dets=st.booleans(),
    compat=st.sampled_from(["official", "default"]),
)
named_configs = st.sampled_from([PostprocessConfig.official_val(), PostprocessConfig.official_demo(),
                                 PostprocessConfig.official_demo(conf_thres=0.5)])  # the last: combined NMS


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    batch=st.integers(1, 2),
    rows=st.sampled_from([0, 1, 7, 64, 500, 2000]),
    num_keypoints=st.sampled_from([14, 17]),
    geometry=st.sampled_from(GEOMETRIES),
    style=st.sampled_from(["realistic", "levels", "thresholds", "huge"]),
    nonfinite_rate=st.sampled_from([0.0, 0.0, 0.002, 0.05]),
    config=st.one_of(configs, named_configs),
    compat=st.sampled_from(["official", "default"]),
)
def test_cpp_matches_numpy_reference(
    seed, batch, rows, num_keypoints, geometry, style, nonfinite_rate, config, compat
) -> None:
    input_hw, original_hw = geometry
    predictions = synthetic_predictions(seed, batch, rows, num_keypoints, input_hw, style, nonfinite_rate)
    assert_backends_agree(predictions, input_hw, original_hw, config.replace(compat=compat))


@PROPERTY_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.sampled_from([0, 1, 50, 400]),
    fill=st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 3e38, -3e38, 1e-45]),
    fill_rate=st.sampled_from([0.1, 0.5, 1.0]),
    config=st.one_of(configs, named_configs),
)
def test_cpp_survives_hostile_values(seed, rows, fill, fill_rate, config) -> None:
    """Overflowing boxes and all-NaN/Inf rows: no crash, and the output keeps its invariants."""
    rng = np.random.default_rng(seed)
    predictions = rng.uniform(-2.0, 2.0, (1, rows, 57)).astype(np.float32)  # (1, N, 57)
    predictions[rng.random(predictions.shape) < fill_rate] = np.float32(fill)
    (poses,) = cpp.postprocess_cpp(predictions, (640, 640), (480, 640), config)
    count = len(poses)
    assert poses.keypoints.shape == (count, 17, 3) and poses.boxes.shape == (count, 4)
    assert count <= config.max_det
    assert np.all(poses.scores > np.float32(config.conf_thres))
    assert np.all(poses.scores[:-1] >= poses.scores[1:])  # NMS order: score-descending


@pytest.mark.parametrize("compat", ["official", "default"])
@pytest.mark.parametrize("config", [PostprocessConfig.official_val(), PostprocessConfig.official_demo()],
                         ids=["val", "demo"])
def test_cpp_matches_numpy_on_200k_rows(config: PostprocessConfig, compat: str) -> None:
    predictions = synthetic_predictions(7, 1, 200_000, 17, (1280, 1280), "realistic", 1e-5)
    assert_backends_agree(predictions, (1280, 1280), (720, 1280), config.replace(compat=compat))
