"""PoseTracker on hand-made sequences whose right answer is known."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from kapao_edge.errors import InputError
from kapao_edge.postprocess import Poses
from kapao_edge.runtime.assignment import linear_assignment
from kapao_edge.presets import get_preset
from kapao_edge.runtime.tracker import PoseTracker, appearance_descriptors, appearance_layout, box_iou, keypoint_similarity

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


# ---- the colour cue: frames drawn with each person's box filled in their clothes' colour

_RED, _BLUE = (40, 40, 200), (200, 60, 40)  # BGR


def paint(people: list[tuple[float, float, tuple[int, int, int]]], size: tuple[int, int] = (360, 640)) -> np.ndarray:
    """A grey (H, W, 3) frame with each person's box filled with their colour, farther first."""
    image = np.full((*size, 3), 128, np.uint8)
    for x, y, colour in sorted(people, key=lambda p: p[1]):  # a lower pelvis is nearer: drawn last
        _, box = person(x, y)
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        image[max(y1, 0):y2, max(x1, 0):x2] = colour
    return image


def _turn_back_sequence() -> list[tuple[Poses, np.ndarray, dict[str, int]]]:
    """Red walks right, blue walks left at the same depth; both are hidden for 8 frames when they
    are about to meet, and come back having turned round: red going left, blue going right. The
    motion model expects each where the other is."""
    sequence = []
    for t in range(40):
        if t < 20:
            xr, xb = 150 + 4 * t, 350 - 4 * t
        elif t < 28:
            sequence.append((frame(), paint([]), {}))
            continue
        else:
            xr, xb = 226 - 4 * (t - 28), 274 + 4 * (t - 28)
        people = [(xr, 200, 0.9), (xb, 200, 0.9)]
        order = people if t % 2 else people[::-1]  # detection order must not matter
        names = {"red": order.index(people[0]), "blue": order.index(people[1])}
        sequence.append((frame(*order), paint([(xr, 200, _RED), (xb, 200, _BLUE)]), names))
    return sequence


def _ids_by_name(tracker: PoseTracker, with_images: bool) -> list[dict[str, int]]:
    out = []
    for poses, image, names in _turn_back_sequence():
        ids = tracker.update(poses, image if with_images else None)
        out.append({name: int(ids[i]) for name, i in names.items()})
    return out


def test_colours_keep_the_ids_of_look_alike_people_who_turn_back_while_hidden() -> None:
    """Same size, same skeleton, same speed: only the colours tell red from blue. Without the frame
    the motion model hands each id to the other person; with it, both keep theirs."""
    with_colour = _ids_by_name(PoseTracker(), with_images=True)
    before, after = with_colour[19], with_colour[-1]
    assert before["red"] != before["blue"] and -1 not in before.values()
    assert after == before

    geometry_only = _ids_by_name(PoseTracker(), with_images=False)
    assert geometry_only[19] == before
    assert geometry_only[-1] == {"red": before["blue"], "blue": before["red"]}  # the case the colours fix


def test_the_colour_cue_can_be_switched_off_and_without_a_frame_nothing_changes() -> None:
    """appearance=0 with frames gives exactly the ids of no frames; the image-free use stays valid."""
    off = _ids_by_name(PoseTracker(appearance=0.0), with_images=True)
    assert off == _ids_by_name(PoseTracker(), with_images=False)


def test_the_same_frames_give_the_same_ids_with_the_colour_cue() -> None:
    tracker = PoseTracker()
    first = _ids_by_name(tracker, with_images=True)
    tracker.reset()
    assert _ids_by_name(tracker, with_images=True) == first


def test_colour_descriptors_read_the_clothes_at_the_keypoints() -> None:
    """Torso and thighs of a person on a red box read red; a person partly off the frame still gets
    a look (points are clamped to the border), one per part."""
    preset = get_preset("coco")
    layout = appearance_layout(preset)
    kps = np.stack([person(100, 200)[0][:, :2], person(630, 200)[0][:, :2]])  # (2, 17, 2), the second at the edge
    image = paint([(100, 200, _RED), (630, 200, _BLUE)])
    looks = appearance_descriptors(image, kps, layout)  # (2, C * 3)
    assert looks.shape == (2, 3 * len(layout[1]))
    np.testing.assert_allclose(looks[0].reshape(-1, 3), np.tile(np.array(_RED) / 255, (len(layout[1]), 1)), atol=1e-9)
    np.testing.assert_allclose(looks[1].reshape(-1, 3), np.tile(np.array(_BLUE) / 255, (len(layout[1]), 1)), atol=1e-9)


def test_a_bad_image_or_weight_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"\(H, W, 3\)"):
        PoseTracker().update(frame((100, 200, 0.9)), np.zeros((360, 640), np.uint8))
    with pytest.raises(InputError, match="appearance"):
        PoseTracker(appearance=1.5)


def test_a_preset_without_torso_keypoints_needs_the_colour_cue_off() -> None:
    from dataclasses import replace

    coco = get_preset("coco")
    names = tuple("hip_a" if n == "left_hip" else n for n in coco.keypoint_names)
    odd = replace(coco, name="odd", keypoint_names=names)
    with pytest.raises(InputError, match=r"lacks the keypoints \['left_hip'\].*appearance=0"):
        PoseTracker(odd)
    assert PoseTracker(odd, appearance=0.0).update(frame((100, 200, 0.9))).shape == (1,)
