"""Candidate filter and class-aware greedy NMS of the NumPy reference, on hand-made rows."""

from __future__ import annotations

import numpy as np
import pytest

from kapao_edge.postprocess import PostprocessConfig
from kapao_edge.postprocess.reference import greedy_nms, non_max_suppression, run_nms


def test_overlapping_boxes_of_one_class_keep_the_most_confident(prediction_row):
    rows = np.stack([
        prediction_row((50, 50, 40, 40), 0.6, 0),
        prediction_row((52, 50, 40, 40), 0.9, 0),  # IoU with the first ~0.9
        prediction_row((200, 50, 40, 40), 0.5, 0),  # far away
    ])
    dets = non_max_suppression(rows, conf_thres=0.1, iou_thres=0.5)
    assert dets.shape == (2, 6 + 34)
    np.testing.assert_allclose(dets[:, 4], [0.9, 0.5])
    np.testing.assert_allclose(dets[0, :4], [32, 30, 72, 70])  # xyxy of the winning row


def test_iou_equal_to_threshold_does_not_suppress():
    boxes = np.float32([[0, 0, 10, 10], [5, 0, 15, 10]])  # IoU exactly 50 / 150
    scores = np.float32([0.9, 0.8])
    iou = np.float32(50) / np.float32(150)
    assert list(greedy_nms(boxes, scores, float(iou), 300)) == [0, 1]
    assert list(greedy_nms(boxes, scores, float(iou) - 1e-6, 300)) == [0]


def test_equal_scores_keep_row_order_and_max_keep_truncates():
    boxes = np.float32([[0, 0, 10, 10], [100, 0, 110, 10], [200, 0, 210, 10]])
    assert list(greedy_nms(boxes, np.float32([0.5, 0.7, 0.5]), 0.5, 300)) == [1, 0, 2]
    assert list(greedy_nms(boxes, np.float32([0.5, 0.5, 0.5]), 0.5, 2)) == [0, 1]


def test_different_classes_do_not_suppress_each_other(prediction_row):
    rows = np.stack([prediction_row((50, 50, 40, 40), 0.9, 0), prediction_row((50, 50, 40, 40), 0.8, 3)])
    dets = non_max_suppression(rows, conf_thres=0.1, iou_thres=0.5)
    assert dets[:, 5].tolist() == [0.0, 3.0]


def test_class_offset_quirk_boxes_wider_than_4096_px_interact(prediction_row):
    """Official behaviour kept on purpose: class c is shifted by (c * 4096, c * 4096) px, so a class-1 box at
    the origin lands exactly on a class-0 box 4096 px further right and down."""
    rows = np.stack([prediction_row((6144, 4146, 4096, 100), 0.9, 0), prediction_row((2048, 50, 4096, 100), 0.8, 1)])
    dets = non_max_suppression(rows, conf_thres=0.1, iou_thres=0.5)
    assert dets[:, 5].tolist() == [0.0]


def test_classes_filter_and_best_class(prediction_row):
    row = prediction_row((50, 50, 10, 10), 0.8, 2, class_prob=0.9)
    row[5 + 4] = 0.9  # tie between classes 2 and 4: the first index wins
    assert non_max_suppression(row[None], 0.1, 0.5)[:, 5].tolist() == [2.0]
    assert len(non_max_suppression(row[None], 0.1, 0.5, classes=[0, 1])) == 0
    np.testing.assert_allclose(non_max_suppression(row[None], 0.1, 0.5)[0, 4], np.float32(0.8) * np.float32(0.9))


def test_thresholds_compare_in_float32_like_torch(prediction_row):
    """torch compares a float32 tensor with a Python float in float32: obj == float32(0.3) is not > 0.3."""
    at_threshold = prediction_row((50, 50, 10, 10), np.float32(0.3), 0)
    assert len(non_max_suppression(at_threshold[None], 0.3, 0.5)) == 0
    above = prediction_row((50, 50, 10, 10), np.nextafter(np.float32(0.3), np.float32(1)), 0)
    assert len(non_max_suppression(above[None], 0.3, 0.5)) == 1


def test_max_nms_keeps_the_most_confident_candidates(prediction_row):
    rows = np.stack([prediction_row((100.0 * i, 50, 10, 10), 0.2 + 0.1 * i, 0) for i in range(5)])
    dets = non_max_suppression(rows, 0.1, 0.5, max_nms=2)
    np.testing.assert_allclose(dets[:, 4], [0.6, 0.5])
    assert len(non_max_suppression(rows, 0.1, 0.5, max_det=3)) == 3


def test_run_nms_combined_path_splits_by_class_and_kp_threshold(prediction_row):
    rows = np.stack([
        prediction_row((50, 50, 40, 80), 0.9, 0),
        prediction_row((40, 30, 8, 8), 0.7, 1),
        prediction_row((60, 30, 8, 8), 0.4, 2),  # below conf_thres_kp: dropped from keypoint objects
    ])
    combined = PostprocessConfig(conf_thres=0.3, iou_thres=0.45, conf_thres_kp=0.5, iou_thres_kp=0.45)
    assert combined.combined_nms
    persons, kps = run_nms(rows, combined)
    assert persons[:, 5].tolist() == [0.0] and kps[:, 5].tolist() == [1.0]
    separate = combined.replace(iou_thres_kp=0.4)
    assert not separate.combined_nms
    persons2, kps2 = run_nms(rows, separate)
    np.testing.assert_array_equal(persons, persons2)
    np.testing.assert_array_equal(kps, kps2)


def test_max_det_counts_all_classes_in_the_combined_run(prediction_row):
    rows = np.stack([prediction_row((50, 50, 40, 80), 0.5, 0)] + [
        prediction_row((20.0 * i, 200, 8, 8), 0.9, 1 + i) for i in range(3)
    ])
    config = PostprocessConfig(conf_thres=0.3, iou_thres=0.45, conf_thres_kp=0.5, iou_thres_kp=0.45, max_det=3)
    persons, kps = run_nms(rows, config)
    assert len(persons) == 0 and len(kps) == 3  # the person ranked fourth
    persons, kps = run_nms(rows, config.replace(iou_thres_kp=0.4))
    assert len(persons) == 1 and len(kps) == 3


@pytest.mark.parametrize("num_keypoints", [1, 14, 17])
def test_output_width_follows_the_keypoint_count(prediction_row, num_keypoints):
    row = prediction_row((50, 50, 10, 10), 0.8, 0, num_keypoints=num_keypoints)
    assert non_max_suppression(row[None], 0.1, 0.5).shape == (1, 6 + 2 * num_keypoints)
    assert non_max_suppression(row[None] * 0, 0.1, 0.5).shape == (0, 6 + 2 * num_keypoints)
