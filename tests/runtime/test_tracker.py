"""PoseTracker on hand-made sequences whose right answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kapao_edge.errors import InputError
from kapao_edge.postprocess import Poses
from kapao_edge.runtime.assignment import linear_assignment
from kapao_edge.runtime.tracker import PoseTracker, box_iou, keypoint_similarity

# A standing person, 17 COCO keypoints in units of body height, pelvis at the origin.
_SKELETON = np.array([
    [0.0, -0.52], [0.02, -0.54], [-0.02, -0.54], [0.05, -0.53], [-0.05, -0.53],
    [0.12, -0.34], [-0.12, -0.34], [0.15, -0.18], [-0.15, -0.18], [0.16, -0.03], [-0.16, -0.03],
    [0.08, 0.0], [-0.08, 0.0], [0.09, 0.24], [-0.09, 0.24], [0.09, 0.47], [-0.09, 0.47],
])  # (17, 2)


def person(x: float, y: float, height: float = 120.0) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints (17, 3) and box (4,) of a person whose pelvis is at (x, y)."""
    xy = _SKELETON * height + (x, y)  # (17, 2)
    kps = np.concatenate([xy, np.ones((17, 1))], axis=1)
    box = np.array([*(xy.min(axis=0) - 4), *(xy.max(axis=0) + 4)])
    return kps, box


def frame(*people: tuple[float, float, float]) -> Poses:
    """Poses from (x, y, score) triples, in the given order."""
    if not people:
        return Poses.empty(17)
    parts = [person(x, y) for x, y, _ in people]
    return Poses(
        keypoints=np.stack([k for k, _ in parts]).astype(np.float32),
        boxes=np.stack([b for _, b in parts]).astype(np.float32),
        scores=np.array([s for _, _, s in people], np.float32),
    )


def test_ids_are_shown_after_min_hits_consecutive_matches() -> None:
    tracker = PoseTracker(min_hits=3)
    got = [tracker.update(frame((100 + 2 * t, 200, 0.9)))[0] for t in range(5)]
    assert got == [-1, -1, 1, 1, 1]


def test_a_one_frame_false_positive_never_takes_an_id() -> None:
    tracker = PoseTracker(min_hits=2)
    tracker.update(frame((100, 200, 0.9), (400, 200, 0.9)))  # the one at 400 appears only here
    for t in range(1, 4):
        ids = tracker.update(frame((100 + 2 * t, 200, 0.9)))
    assert ids.tolist() == [1]


def test_ids_survive_two_people_crossing() -> None:
    """A walks right, B walks left at the same height and size; boxes overlap for several frames,
    and B, hidden behind A, is not detected at the crossing. The motion model keeps the ids apart."""
    tracker = PoseTracker()
    first = None
    for t in range(60):
        xa, xb = 100 + 5 * t, 400 - 5 * t  # they meet at t = 30
        people = [(xa, 200, 0.9)]
        if abs(xa - xb) > 20:
            people.append((xb, 203, 0.9))
        order = people if t % 2 else people[::-1]  # detection order must not matter
        ids = tracker.update(frame(*order))
        by_person = dict(zip([p[0] for p in order], ids.tolist()))
        if t == 5:
            first = (by_person[xa], by_person[xb])
    assert first is not None and -1 not in first and first[0] != first[1]
    assert (by_person[xa], by_person[xb]) == first


def test_an_id_is_kept_through_a_short_occlusion_but_not_a_long_one() -> None:
    tracker = PoseTracker(max_lost=15, min_hits=3)
    for t in range(10):
        (first,) = tracker.update(frame((100 + 4 * t, 200, 0.9)))
    for t in range(10, 22):  # hidden for 12 frames, still walking
        assert tracker.update(frame()).shape == (0,)
    (after,) = tracker.update(frame((100 + 4 * 22, 200, 0.9)))
    assert first == after == 1

    for t in range(23, 60):  # gone longer than max_lost: the track is dropped
        tracker.update(frame())
    got = [tracker.update(frame((100 + 4 * t, 200, 0.9)))[0] for t in range(60, 63)]
    assert got == [-1, -1, 2]


def test_a_person_who_stops_while_hidden_is_recovered_where_last_seen() -> None:
    """Walking right at 6 px/frame, hidden for 8 frames, back where they were last seen (they
    stopped): the prediction is ~50 px ahead and misses, the recovery stage matches the last
    observation and keeps the id; the person walking alongside keeps theirs."""
    tracker = PoseTracker()
    for t in range(12):
        ids = tracker.update(frame((100 + 6 * t, 200, 0.9), (400, 200, 0.9)))
    assert ids.tolist() == [1, 2]
    for _ in range(8):
        tracker.update(frame((400, 200, 0.9)))
    assert tracker.update(frame((400, 200, 0.9), (100 + 6 * 11, 200, 0.9))).tolist() == [2, 1]


def test_the_second_stage_keeps_a_low_score_detection_on_its_track() -> None:
    """While a person is half hidden the score drops to 0.3: the second stage keeps their id and
    the frames count; with the second stage disabled (low_score = high_score) they are dropped."""
    def run(tracker: PoseTracker) -> list[int]:
        out = []
        for t in range(20):
            score = 0.3 if 8 <= t < 14 else 0.9
            out.append(int(tracker.update(frame((100 + 3 * t, 200, score)))[0]))
        return out

    two_stage = run(PoseTracker(high_score=0.5, low_score=0.1))  # 0.3 is a low score here
    assert two_stage[2:] == [1] * 18
    one_stage = run(PoseTracker(high_score=0.5, low_score=0.5))
    assert one_stage[8:14] == [-1] * 6 and one_stage[14:] == [1] * 6  # lost, then found again


def test_a_low_score_detection_never_starts_a_track() -> None:
    tracker = PoseTracker(min_hits=1)
    assert [tracker.update(frame((100, 200, 0.3)))[0] for _ in range(5)] == [-1] * 5
    assert tracker.num_tracks == 0


def test_the_same_sequence_gives_the_same_ids_and_reset_restarts() -> None:
    rng = np.random.default_rng(0)
    sequence = []
    for t in range(40):
        people = [(50 + 3 * t + 90 * i + rng.normal(0, 1), 200 + rng.normal(0, 1), rng.uniform(0.2, 1.0))
                  for i in range(4) if rng.random() > 0.1]
        sequence.append(frame(*people))
    tracker = PoseTracker()
    first = [tracker.update(p).tolist() for p in sequence]
    tracker.reset()
    again = [tracker.update(p).tolist() for p in sequence]
    assert first == again == [PoseTracker().update(sequence[0]).tolist()] + first[1:]
    assert max(max(ids, default=-1) for ids in first) >= 4


def test_bad_parameters_and_keypoint_counts_are_input_errors() -> None:
    with pytest.raises(InputError):
        PoseTracker(high_score=0.2, low_score=0.5)
    with pytest.raises(InputError):
        PoseTracker(match_threshold=0.0)
    with pytest.raises(InputError):
        PoseTracker(preset="crowdpose").update(frame((100, 200, 0.9)))


def test_similarities_on_known_cases() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 10]], float)
    b = np.array([[5, 0, 15, 10], [20, 20, 30, 30]], float)
    assert box_iou(a, b)[0].tolist() == pytest.approx([50 / 150, 0.0])
    sigmas = np.full(2, 0.1)
    kps = np.zeros((1, 2, 2))
    moved = kps + [3.0, 4.0]  # 5 px away: exp(-25 / (2 * 100 * 0.04))
    oks = keypoint_similarity(kps, np.concatenate([kps, moved]), np.array([100.0]), sigmas)
    assert oks[0].tolist() == pytest.approx([1.0, np.exp(-25 / 8)])


def test_assignment_matches_brute_force() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        rows, cols = (int(v) for v in rng.integers(1, 6, size=2))
        cost = rng.integers(0, 4, size=(rows, cols)).astype(float)  # many ties
        r, c = linear_assignment(cost)
        assert len(r) == min(rows, cols) and len(set(r)) == len(r) and len(set(c)) == len(c)
        if rows <= cols:
            best = min(sum(cost[i, p[i]] for i in range(rows)) for p in itertools.permutations(range(cols), rows))
        else:
            best = min(sum(cost[p[j], j] for j in range(cols)) for p in itertools.permutations(range(rows), cols))
        assert cost[r, c].sum() == best


def test_poses_carry_optional_ids() -> None:
    poses = frame((100, 200, 0.9), (300, 200, 0.8))
    assert poses.ids is None
    tracked = poses.with_ids(np.array([3, -1]))
    assert tracked.ids.dtype == np.int64 and tracked.ids.tolist() == [3, -1]
    assert tracked.keypoints is poses.keypoints
    with pytest.raises(InputError):
        poses.with_ids(np.array([1, 2, 3]))
