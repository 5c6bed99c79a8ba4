"""KAPAO training labels: pose objects and keypoint objects built from COCO person-keypoint annotations.

One label row is ``[cls, x1, y1, x2, y2, k0x, k0y, k0v, ...]`` in pixels of the image it belongs to:
class 0 is a pose object (the person box and its K keypoints, invisible ones all zero), class k + 1
is a keypoint object for keypoint k (a small square box centred on it, keypoint columns zero).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kapao_edge.errors import InputError

POSE_CLASS = 0


@dataclass
class ImageAnnotations:
    """The persons of one image, in its original pixel coordinates."""

    path: Path
    height: int
    width: int
    boxes: np.ndarray  # (P, 4) x1, y1, x2, y2
    keypoints: np.ndarray  # (P, K, 3) x, y, v (v > 0 = labelled)
    image_id: int = 0


def read_coco_keypoints(annotation_file: str | Path, images_dir: str | Path) -> tuple[list[ImageAnnotations], int]:
    """Images and persons of a COCO person-keypoints JSON; returns them and the keypoint count K.

    Crowd regions are skipped (as the official label writer does for training); persons without
    keypoints stay as box-only pose objects; images without persons stay as background images.
    """
    from kapao_edge.data.coco import load_keypoint_dataset

    dataset = load_keypoint_dataset(annotation_file, images_dir)
    records = []
    for image in dataset.images:
        persons = image.persons
        keep = ~persons.iscrowd  # (P,)
        x, y, w, h = persons.boxes_xywh[keep].T  # (P,) each
        keypoints = persons.keypoints[keep].astype(np.float32)  # (P, K, 3)
        keypoints[keypoints[..., 2] <= 0] = 0.0
        boxes = np.stack([x, y, x + w, y + h], axis=1).astype(np.float32)  # (P, 4)
        records.append(ImageAnnotations(image.path, image.height, image.width, boxes, keypoints, image.id))
    if not records:
        raise InputError(f"{annotation_file} lists no images")
    return records, dataset.preset.num_keypoints


def make_labels(boxes: np.ndarray, keypoints: np.ndarray, kp_box_side: float) -> np.ndarray:
    """Pose objects for every person, then one keypoint object per labelled keypoint."""
    return np.concatenate([pose_labels(boxes, keypoints), keypoint_labels(keypoints, kp_box_side)], axis=0)


def pose_labels(boxes: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    num_persons = len(keypoints)
    poses = np.zeros((num_persons, 5 + keypoints.shape[1] * 3), dtype=np.float32)  # (P, 5 + 3K)
    poses[:, 0] = POSE_CLASS
    poses[:, 1:5] = boxes
    poses[:, 5:] = keypoints.reshape(num_persons, keypoints.shape[1] * 3)
    return poses


def keypoint_labels(keypoints: np.ndarray, kp_box_side: float) -> np.ndarray:
    """Square boxes of side ``kp_box_side`` centred on each labelled keypoint, class = keypoint + 1."""
    person_idx, kp_idx = np.nonzero(keypoints[..., 2] > 0)  # row-major: person by person, stable
    centres = keypoints[person_idx, kp_idx, :2]  # (M, 2)
    kp_objects = np.zeros((len(centres), 5 + keypoints.shape[1] * 3), dtype=np.float32)  # (M, 5 + 3K)
    kp_objects[:, 0] = kp_idx + 1
    kp_objects[:, 1:3] = centres - kp_box_side / 2
    kp_objects[:, 3:5] = centres + kp_box_side / 2
    return kp_objects


def clip_boxes(labels: np.ndarray, width: int, height: int) -> None:
    """Clip the box columns in place to the image (keypoint-object boxes near a border shrink)."""
    labels[:, [1, 3]] = labels[:, [1, 3]].clip(0, width)
    labels[:, [2, 4]] = labels[:, [2, 4]].clip(0, height)


def flip_labels_lr(labels: np.ndarray, width: int, kp_flip: tuple[int, ...] | list[int]) -> np.ndarray:
    """Labels of the left-right mirrored image: mirrored x, left/right keypoints and classes swapped."""
    flipped = labels.copy()
    flipped[:, 1] = width - labels[:, 3]
    flipped[:, 3] = width - labels[:, 1]
    num_rows, num_keypoints = len(labels), (labels.shape[1] - 5) // 3
    keypoints = flipped[:, 5:].reshape(num_rows, num_keypoints, 3)  # (n, K, 3)
    visible = keypoints[..., 2] > 0
    keypoints[..., 0] = np.where(visible, width - keypoints[..., 0], 0.0)
    flipped[:, 5:] = keypoints[:, list(kp_flip)].reshape(num_rows, num_keypoints * 3)
    class_flip = np.array([POSE_CLASS, *(k + 1 for k in kp_flip)])
    flipped[:, 0] = class_flip[labels[:, 0].astype(np.int64)]
    return flipped


def labels_to_targets(labels: np.ndarray, width: int, height: int) -> np.ndarray:
    """Pixel xyxy rows -> the loss's normalised rows ``[cls, cx, cy, w, h, kx, ky, kv, ...]``."""
    targets = labels.copy()
    targets[:, 1] = (labels[:, 1] + labels[:, 3]) / 2 / width
    targets[:, 2] = (labels[:, 2] + labels[:, 4]) / 2 / height
    targets[:, 3] = (labels[:, 3] - labels[:, 1]) / width
    targets[:, 4] = (labels[:, 4] - labels[:, 2]) / height
    targets[:, 5::3] /= width
    targets[:, 6::3] /= height
    return targets
