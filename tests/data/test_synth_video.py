"""Synthetic video: determinism, ground truth that agrees with itself and with the file written."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kapao_edge.data.synth.video import (
    GROUND_TRUTH_NAME, VIDEO_NAME, VideoStyle, generate_video, load_tracks, write_video,
)
from kapao_edge.errors import InputError

SIZE = (160, 240)


def test_the_same_seed_gives_the_same_frames_and_ground_truth() -> None:
    a = list(generate_video(7, 8, SIZE))
    b = list(generate_video(7, 8, SIZE))
    c = list(generate_video(8, 8, SIZE))
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.ids, y.ids)
        assert np.array_equal(x.keypoints, y.keypoints) and np.array_equal(x.boxes, y.boxes)
    assert not np.array_equal(a[0].image, c[0].image)


def test_ground_truth_is_consistent_frame_to_frame() -> None:
    """Ids are unique per frame, visible keypoints lie in their box, and a person seen in two
    consecutive frames moves a few pixels, never jumps (an id always names the same person)."""
    frames = list(generate_video(1, 40))
    height, width = frames[0].image.shape[:2]
    moved = 0.0
    for prev, cur in zip(frames, frames[1:]):
        assert len(set(cur.ids.tolist())) == len(cur.ids)
        assert cur.keypoints.shape == (len(cur.ids), 17, 3) and cur.boxes.shape == (len(cur.ids), 4)
        assert set(np.unique(cur.keypoints[:, :, 2]).tolist()) <= {0.0, 1.0, 2.0}
        assert (cur.boxes[:, :2] >= 0).all() and (cur.boxes[:, 2] <= width).all() and (cur.boxes[:, 3] <= height).all()
        for kps, box in zip(cur.keypoints, cur.boxes):
            vis = kps[kps[:, 2] == 2, :2]  # (V, 2)
            assert ((vis >= box[:2] - 1) & (vis <= box[2:] + 1)).all()
        for k, person in enumerate(cur.ids):
            (j,) = np.nonzero(prev.ids == person)[0][:1] if person in prev.ids else (None,)
            if j is None:
                continue
            both = (cur.keypoints[k, :, 2] > 0) & (prev.keypoints[j, :, 2] > 0)  # (K,)
            step = np.linalg.norm(cur.keypoints[k, both, :2] - prev.keypoints[j, both, :2], axis=1)
            assert (step < 0.1 * height).all()  # a brisk stride moves a foot ~15 px at 320 px
            moved = max(moved, float(step.max(initial=0)))
    assert moved > 1.0  # people do move


def test_sequences_have_crossings_occlusions_and_people_entering_or_leaving() -> None:
    crossings = covered = partial = 0
    for seed in range(4):
        frames = list(generate_video(seed, 60, SIZE, style=VideoStyle(min_people=3, max_people=5)))
        seen: dict[int, list[float]] = {}
        for f in frames:
            covered += int((f.keypoints[:, :, 2] == 1).sum())
            for person, box in zip(f.ids.tolist(), f.boxes):
                seen.setdefault(person, []).append(float(box[0] + box[2]) / 2)
        partial += sum(len(xs) < len(frames) for xs in seen.values())
        people = sorted(seen)
        for a in people:
            for b in people:
                if a < b and len(seen[a]) > 1 and len(seen[b]) > 1:
                    start = seen[a][0] - seen[b][0]
                    end = seen[a][-1] - seen[b][-1]
                    crossings += int(start * end < 0)
    assert crossings > 0 and covered > 0 and partial > 0


def test_write_video_matches_the_generator(tmp_path: Path) -> None:
    video_path, gt_path = write_video(tmp_path / "clip", seed=3, num_frames=6, imgsz=SIZE)
    assert video_path.name == VIDEO_NAME and gt_path.name == GROUND_TRUTH_NAME
    assert sorted(p.name for p in (tmp_path / "clip").iterdir()) == sorted([VIDEO_NAME, GROUND_TRUTH_NAME])
    capture = cv2.VideoCapture(str(video_path))
    decoded = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        decoded.append(image)
    capture.release()
    expected = list(generate_video(3, 6, SIZE))
    assert len(decoded) == 6 and decoded[0].shape == (*SIZE, 3)
    error = np.abs(decoded[2].astype(int) - expected[2].image.astype(int)).mean()
    assert error < 12  # lossy mp4v, but the same picture
    info, frames = load_tracks(gt_path)
    assert info["frames"] == 6 and info["seed"] == 3 and info["image_size"] == list(SIZE)
    assert len(frames) == 6
    for record, frame in zip(frames, expected):
        assert [p["id"] for p in record] == frame.ids.tolist()
        assert all(len(p["keypoints"]) == 17 and len(p["box"]) == 4 for p in record)
        np.testing.assert_allclose([p["box"] for p in record], frame.boxes.reshape(-1, 4), atol=1e-4)
    assert json.loads(gt_path.read_text())["info"]["box_format"] == "x1y1x2y2"


def test_bad_options_are_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        next(generate_video(0, 0))
    with pytest.raises(InputError):
        next(generate_video(-1, 5))
    with pytest.raises(InputError):
        write_video(tmp_path / "x", 0, 5, imgsz=(16, 16))
    assert not (tmp_path / "x").exists()
    with pytest.raises(InputError):
        load_tracks(tmp_path / "missing.json")
