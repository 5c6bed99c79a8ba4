"""The wire format alone (no server): poses survive encode -> stack -> decode; errors and overflow."""

from __future__ import annotations

import numpy as np

from kapao_edge.data import LetterboxInfo
from kapao_edge.postprocess import Poses
from kapao_edge.serving import protocol


def _poses(count: int, keypoints: int = 17, seed: int = 0) -> Poses:
    rng = np.random.default_rng(seed)
    return Poses(keypoints=rng.uniform(0, 640, (count, keypoints, 3)).astype(np.float32),
                 boxes=rng.uniform(0, 640, (count, 4)).astype(np.float32),
                 scores=np.sort(rng.uniform(0, 1, count).astype(np.float32))[::-1].copy())


def test_round_trip_with_an_error_between():
    info = LetterboxInfo((480, 640), (320, 448), (0.7, 0.7), (0.0, 0.0))
    first, last = _poses(3), _poses(0, seed=1)
    outputs = protocol.stack([protocol.encode(first, info, 5, 17), protocol.encode_error("bad frame", 5, 17),
                              protocol.encode(last, info, 5, 17)])
    assert outputs["keypoints"].shape == (3, 5, 17, 3) and outputs["count"].shape == (3, 1)
    poses, decoded_info, error = protocol.decode(outputs, 0, (480, 640))
    assert error == "" and decoded_info == info
    np.testing.assert_array_equal(poses.keypoints, first.keypoints)
    np.testing.assert_array_equal(poses.boxes, first.boxes)
    np.testing.assert_array_equal(poses.scores, first.scores)
    poses, _, error = protocol.decode(outputs, 1, (480, 640))
    assert error == "bad frame" and len(poses) == 0
    poses, _, error = protocol.decode(outputs, 2, (480, 640))
    assert error == "" and len(poses) == 0


def test_more_poses_than_rows_keeps_the_best():
    many = _poses(7)
    info = LetterboxInfo((480, 640), (320, 448), (0.7, 0.7), (0.0, 0.0))
    poses, _, _ = protocol.decode(protocol.stack([protocol.encode(many, info, 4, 17)]), 0, (480, 640))
    assert len(poses) == 4
    np.testing.assert_array_equal(poses.scores, many.scores[:4])
