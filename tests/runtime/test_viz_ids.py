"""draw_poses with tracker ids: unchanged without them, labelled and coloured with them."""

from __future__ import annotations

import numpy as np

from kapao_edge.presets import COCO
from kapao_edge.viz import draw_poses, id_colour


def _poses() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    kps = np.concatenate([rng.uniform(60, 140, size=(2, 17, 2)), np.ones((2, 17, 1))], axis=2)  # (2, 17, 3)
    kps[1, :, 0] += 100
    boxes = np.array([[50, 50, 150, 150], [150, 50, 250, 150]], np.float32)
    return kps.astype(np.float32), boxes, np.array([0.9, 0.8], np.float32)


def test_without_ids_the_drawing_is_unchanged() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    kps, boxes, scores = _poses()
    plain = draw_poses(image, kps, boxes, scores, COCO)
    assert np.array_equal(plain, draw_poses(image, kps, boxes, scores, COCO, ids=None))
    assert np.array_equal(plain, draw_poses(image, kps, boxes, scores, COCO, ids=np.array([-1, -1])))


def test_ids_are_drawn_in_their_own_colours() -> None:
    image = np.zeros((200, 300, 3), np.uint8)
    kps, boxes, scores = _poses()
    plain = draw_poses(image, kps, boxes, scores, COCO)
    tracked = draw_poses(image, kps, boxes, scores, COCO, ids=np.array([3, -1]))
    changed = np.any(tracked != plain, axis=2)  # (H, W)
    assert changed[:, :150].any() and not changed[:, 160:].any()  # only the person with an id
    assert (tracked == id_colour(3)).all(axis=2).any()
    assert id_colour(3) != id_colour(4) and id_colour(3) == id_colour(3)
    no_boxes = draw_poses(image, kps, None, None, COCO, ids=np.array([3, 4]))
    assert (no_boxes == id_colour(4)).all(axis=2).any()
