"""Training samples: determinism, flips, and keypoints that stay on their pixels under augmentation."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from kapao_edge.errors import InputError
from kapao_edge.presets import COCO
from kapao_edge.train.dataset import KapaoDataset, collate, make_loader, resolve_split
from kapao_edge.train.hyp import Hyp
from kapao_edge.train.labels import flip_labels_lr

K = 17
SIZE = 128


def dot_colour(k: int) -> tuple[int, int, int]:
    """BGR colour painted under keypoint k: blue encodes the index."""
    return (40 + 10 * k, 0, 255)


@pytest.fixture(scope="module")
def dot_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Images whose keypoints sit on 7x7 dots coloured by keypoint index, one person per image."""
    root = tmp_path_factory.mktemp("dots")
    (root / "images").mkdir()
    rng = np.random.default_rng(1)
    images, annotations = [], []
    for index in range(4):
        image = np.full((SIZE, SIZE, 3), 114, np.uint8)
        origin = rng.integers(0, 20, 2)
        points = np.array([[16 + 20 * (k % 5), 14 + 22 * (k // 5)] for k in range(K)]) + origin  # (K, 2)
        for k, (x, y) in enumerate(points):
            image[y - 3:y + 4, x - 3:x + 4] = dot_colour(k)
        cv2.imwrite(str(root / "images" / f"{index}.png"), image)
        keypoints = np.concatenate([points, np.full((K, 1), 2)], axis=1).astype(float)
        x0, y0 = points.min(0) - 4
        x1, y1 = points.max(0) + 4
        images.append({"id": index + 1, "file_name": f"{index}.png", "height": SIZE, "width": SIZE})
        annotations.append({"id": index + 1, "image_id": index + 1, "iscrowd": 0, "category_id": 1,
                            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                            "keypoints": keypoints.reshape(-1).tolist(), "num_keypoints": K})
    (root / "ann.json").write_text(json.dumps({"images": images, "annotations": annotations,
                                               "categories": [{"id": 1, "keypoints": list(COCO.keypoint_names)}]}))
    return root


def dataset_of(root: Path, hyp: Hyp, **kwargs) -> KapaoDataset:
    return KapaoDataset.from_coco(root / "ann.json", root / "images", SIZE, hyp=hyp, **kwargs)


def colour_index_at(image: np.ndarray, x: float, y: float) -> int | None:
    """Keypoint index encoded by the dot under (x, y), or None if no dot colour is there."""
    b, g, r = (int(v) for v in image[int(round(y)), int(round(x))])
    if r < 200 or g > 60 or (b - 40) % 10 not in (0, 1, 2, 8, 9):
        return None
    return int(round((b - 40) / 10))


def test_samples_are_reproducible_per_seed_and_epoch(stick_dataset):
    ann, images = stick_dataset / "person_keypoints.json", stick_dataset / "images"
    first, second = (KapaoDataset.from_coco(ann, images, SIZE, seed=3) for _ in range(2))
    for index in range(3):
        image_a, targets_a, _ = first[index]
        image_b, targets_b, _ = second[index]
        assert torch.equal(image_a, image_b) and torch.equal(targets_a, targets_b)
    second.set_epoch(1)
    assert not torch.equal(first[0][0], second[0][0])


def test_mosaic_scale_rotation_keep_keypoints_on_their_dots(dot_dataset):
    hyp = Hyp(hsv_h=0, hsv_s=0, hsv_v=0, fliplr=0.0, mosaic=1.0, scale=0.3, degrees=10.0, translate=0.1)
    dataset = dataset_of(dot_dataset, hyp)
    checked = hidden = 0
    for epoch in range(3):
        dataset.set_epoch(epoch)
        for index in range(len(dataset)):
            image, labels = dataset.labelled_sample(index, np.random.default_rng([epoch, index]))
            assert image.shape == (SIZE, SIZE, 3)
            poses = labels[labels[:, 0] == 0]
            for pose in poses:
                kps = pose[5:].reshape(K, 3)
                for k in np.nonzero(kps[:, 2] > 0)[0]:
                    assert 0 <= kps[k, 0] < SIZE and 0 <= kps[k, 1] < SIZE
                    assert colour_index_at(image, kps[k, 0], kps[k, 1]) == k
                    checked += 1
                hidden += int((kps[:, 2] == 0).sum())
                assert not kps[kps[:, 2] == 0].any()  # hidden keypoints are all zero
            for row in labels[labels[:, 0] > 0]:
                centre = (row[1:3] + row[3:5]) / 2
                side = row[3:5] - row[1:3]
                if np.all(side > 6.3):  # unclipped box: centred on the keypoint
                    assert colour_index_at(image, *centre) == int(row[0]) - 1
    assert checked > 100 and hidden > 0  # mosaics push some keypoints out of the frame


def test_visible_dots_keep_visible_keypoints(dot_dataset):
    """The reverse check: a dot that survives whole inside the image is not marked invisible."""
    hyp = Hyp(hsv_h=0, hsv_s=0, hsv_v=0, fliplr=0.0, mosaic=0.0, scale=0.2, translate=0.3)
    dataset = dataset_of(dot_dataset, hyp)
    whole_dots = 0
    for index in range(len(dataset)):
        image, labels = dataset.labelled_sample(index, np.random.default_rng(index))
        visible = {int(row[0]) - 1 for row in labels if row[0] > 0}
        for k in range(K):
            ys, xs = np.nonzero(np.all(image == np.array(dot_colour(k), np.uint8), axis=-1))
            if len(xs) >= 9 and xs.min() > 0 and ys.min() > 0 and xs.max() < SIZE - 1 and ys.max() < SIZE - 1:
                assert k in visible
                whole_dots += 1
    assert whole_dots > 20


def test_flip_in_the_dataset_mirrors_pixels_and_labels(dot_dataset):
    base = Hyp().without_augmentation()
    plain = dataset_of(dot_dataset, base)
    flipped = dataset_of(dot_dataset, base.updated(fliplr=1.0))
    image, labels = plain.labelled_sample(2, np.random.default_rng(0))
    image_f, labels_f = flipped.labelled_sample(2, np.random.default_rng(0))
    np.testing.assert_array_equal(image_f, image[:, ::-1])
    np.testing.assert_allclose(labels_f, flip_labels_lr(labels, SIZE, COCO.kp_flip))
    # after the flip, the left-eye slot (1) holds the dot painted for the right eye (2)
    pose = labels_f[labels_f[:, 0] == 0][0, 5:].reshape(K, 3)
    assert colour_index_at(image_f, pose[1, 0], pose[1, 1]) == COCO.kp_flip[1] == 2


def test_validation_samples_are_letterboxed_without_augmentation(dot_dataset):
    dataset = dataset_of(dot_dataset, Hyp(), augment=False)
    image, targets, index = dataset[1]
    assert image.shape == (3, SIZE, SIZE) and image.dtype == torch.uint8 and index == 1
    assert targets.shape == (1 + K, 5 + 3 * K)
    assert torch.all((targets[:, 1:5] >= 0) & (targets[:, 1:5] <= 1))


def test_collate_and_loader(stick_dataset):
    dataset = KapaoDataset.from_coco(stick_dataset / "person_keypoints.json", stick_dataset / "images", SIZE)
    images, targets, indices = collate([dataset[0], dataset[1]])
    assert images.shape == (2, 3, SIZE, SIZE)
    assert set(targets[:, 0].tolist()) <= {0.0, 1.0} and targets.shape[1] == 6 + 3 * K
    assert indices == [0, 1]
    order_a = [i for _, _, ids in make_loader(dataset, 2, seed=1) for i in ids]
    order_b = [i for _, _, ids in make_loader(dataset, 2, seed=1) for i in ids]
    assert order_a == order_b and sorted(order_a) == list(range(len(dataset)))


def test_resolve_split(stick_dataset, tmp_path):
    ann, images = resolve_split(stick_dataset)
    assert ann.name == "person_keypoints.json" and images == stick_dataset / "images"
    assert resolve_split(ann, images) == (ann, images)
    with pytest.raises(InputError, match="exactly one"):
        resolve_split(tmp_path)
    with pytest.raises(InputError, match="not found"):
        resolve_split(tmp_path / "nope")


def test_bad_kp_flip_is_refused(stick_dataset):
    with pytest.raises(InputError, match="permutation"):
        KapaoDataset.from_coco(stick_dataset / "person_keypoints.json", stick_dataset / "images", SIZE,
                               kp_flip=[0] * K)
