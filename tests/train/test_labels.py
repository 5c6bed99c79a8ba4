"""KAPAO label rows from COCO annotations, and their left-right flip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kapao_edge.errors import InputError
from kapao_edge.presets import COCO, CROWDPOSE
from kapao_edge.train.labels import flip_labels_lr, labels_to_targets, make_labels, read_coco_keypoints

K = 17


def one_person() -> tuple[np.ndarray, np.ndarray]:
    boxes = np.array([[10, 20, 50, 100]], dtype=np.float32)
    keypoints = np.zeros((1, K, 3), dtype=np.float32)
    keypoints[0, 0] = (30, 25, 2)  # nose
    keypoints[0, 1] = (27, 22, 1)  # left eye (labelled, occluded)
    keypoints[0, 6] = (40, 40, 2)  # right shoulder
    return boxes, keypoints


def test_pose_object_then_one_keypoint_object_per_labelled_keypoint():
    boxes, keypoints = one_person()
    labels = make_labels(boxes, keypoints, kp_box_side=6.4)
    assert labels.shape == (4, 5 + 3 * K)
    assert labels[0, :5].tolist() == [0, 10, 20, 50, 100]
    np.testing.assert_array_equal(labels[0, 5:].reshape(K, 3), keypoints[0])
    assert labels[1:, 0].tolist() == [1, 2, 7]  # class = keypoint index + 1
    np.testing.assert_allclose(labels[1, 1:5], [26.8, 21.8, 33.2, 28.2], rtol=1e-6)
    assert not labels[1:, 5:].any()  # keypoint objects carry no keypoints


def test_flip_mirrors_x_and_swaps_left_right_keypoints_and_classes():
    boxes, keypoints = one_person()
    labels = make_labels(boxes, keypoints, kp_box_side=6.4)
    flipped = flip_labels_lr(labels, width=128, kp_flip=COCO.kp_flip)

    assert flipped[0, 1:5].tolist() == pytest.approx([78, 20, 118, 100])
    kps = flipped[0, 5:].reshape(K, 3)
    assert kps[0].tolist() == pytest.approx([98, 25, 2])  # nose stays nose
    assert kps[2].tolist() == pytest.approx([101, 22, 1])  # the left eye becomes the right eye
    assert kps[5].tolist() == pytest.approx([88, 40, 2])  # right shoulder becomes left shoulder
    assert not kps[[1, 6]].any()  # unlabelled ones stay all zero, not 128 - 0
    # keypoint classes: nose 1 -> 1, left eye 2 -> right eye 3, right shoulder 7 -> left shoulder 6
    assert flipped[1:, 0].tolist() == [1, 3, 6]
    assert flipped[2, 1:5].tolist() == pytest.approx([128 - 30.2, 18.8, 128 - 23.8, 25.2])
    np.testing.assert_allclose(flip_labels_lr(flipped, 128, COCO.kp_flip), labels, atol=1e-4)


def test_flip_with_crowdpose_order():
    keypoints = np.zeros((1, 14, 3), dtype=np.float32)
    keypoints[0, 0] = (10, 10, 2)  # left shoulder
    keypoints[0, 12] = (20, 5, 2)  # head (no mirror partner)
    labels = make_labels(np.array([[0, 0, 30, 60]], np.float32), keypoints, 3.0)
    flipped = flip_labels_lr(labels, 100, CROWDPOSE.kp_flip)
    kps = flipped[0, 5:].reshape(14, 3)
    assert kps[1].tolist() == [90, 10, 2] and kps[12].tolist() == [80, 5, 2] and not kps[0].any()
    assert flipped[1:, 0].tolist() == [2, 13]


def test_targets_are_normalised_centre_size():
    boxes, keypoints = one_person()
    targets = labels_to_targets(make_labels(boxes, keypoints, 6.4), width=128, height=256)
    assert targets[0, :5].tolist() == pytest.approx([0, 30 / 128, 60 / 256, 40 / 128, 80 / 256])
    assert targets[0, 5:8].tolist() == pytest.approx([30 / 128, 25 / 256, 2])


def test_reader_keeps_box_only_persons_and_background_images_and_skips_crowds(tmp_path):
    kps = [0.0] * (3 * K)
    kps[0:3] = [12, 14, 2]
    data = {
        "images": [{"id": 7, "file_name": "b.png", "height": 50, "width": 60},
                   {"id": 3, "file_name": "a.png", "height": 40, "width": 80}],
        "annotations": [
            {"id": 1, "image_id": 3, "bbox": [1, 2, 10, 20], "keypoints": kps, "iscrowd": 0, "num_keypoints": 1},
            {"id": 2, "image_id": 3, "bbox": [5, 5, 5, 5], "keypoints": [0] * (3 * K), "iscrowd": 0},
            {"id": 3, "image_id": 3, "bbox": [0, 0, 30, 30], "keypoints": [0] * (3 * K), "iscrowd": 1},
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO.keypoint_names)}],
    }
    path = tmp_path / "ann.json"
    path.write_text(json.dumps(data))
    (tmp_path / "images").mkdir()
    for name in ("a.png", "b.png"):
        (tmp_path / "images" / name).write_bytes(b"")
    records, num_keypoints = read_coco_keypoints(path, tmp_path / "images")
    assert num_keypoints == K
    assert [r.image_id for r in records] == [3, 7]
    assert records[0].boxes.tolist() == [[1, 2, 11, 22], [5, 5, 10, 10]]
    assert records[0].keypoints[0, 0].tolist() == [12, 14, 2] and not records[0].keypoints[1].any()
    assert len(records[1].boxes) == 0 and records[1].path == tmp_path / "images" / "b.png"


def test_reader_errors_are_user_errors(tmp_path):
    with pytest.raises(InputError):
        read_coco_keypoints(tmp_path / "missing.json", tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError):
        read_coco_keypoints(bad, tmp_path)
