"""CLEAR-MOT and IDF1 on hand-made sequences whose answers follow from the definitions."""

from __future__ import annotations

import numpy as np
import pytest

from kapao_edge.errors import InputError
from kapao_edge.eval.mot import MotAccumulator, MotCounts, evaluate_sequence

A_BOX = [0, 0, 10, 10]
B_BOX = [100, 0, 110, 10]
FAR = [500, 500, 510, 510]


def fr(*items: tuple[int, list[float]]) -> tuple[np.ndarray, np.ndarray]:
    return np.array([i for i, _ in items], np.int64), np.array([b for _, b in items], float).reshape(-1, 4)


def test_perfect_tracking() -> None:
    gt = [fr((1, A_BOX), (2, B_BOX))] * 5
    hyp = [fr((7, B_BOX), (3, A_BOX))] * 5  # ids are labels, order does not matter
    c = evaluate_sequence(gt, hyp)
    assert (c.objects, c.matches, c.misses, c.false_positives, c.id_switches) == (10, 10, 0, 0, 0)
    assert c.mota == 1.0 and c.idf1 == 1.0 and c.motp == 1.0


def test_two_tracks_swapping_ids_halfway() -> None:
    """Frames 0-4: A->1, B->2; frames 5-9: A->2, B->1. Two switches at frame 5: MOTA 1 - 2/20.
    IDF1: each object overlaps each hypothesis 5 frames; the best one-to-one pairing gets 5 + 5 of
    the 20 + 20 boxes: 2 * 10 / 40."""
    gt = [fr((1, A_BOX), (2, B_BOX))] * 10
    hyp = [fr((1, A_BOX), (2, B_BOX))] * 5 + [fr((2, A_BOX), (1, B_BOX))] * 5
    c = evaluate_sequence(gt, hyp)
    assert c.id_switches == 2 and c.mota == pytest.approx(0.9) and c.idf1 == pytest.approx(0.5)
    assert c.switches_per_100 == pytest.approx(10.0)


def test_a_new_id_after_a_gap_is_one_switch() -> None:
    """A is tracked as 1 in frames 0-3, not at all in 4-5 (2 misses), then as 2 in 6-9: one switch
    (the last correspondence is remembered across the gap). MOTA = 1 - (2 + 1) / 10; IDF1: the
    best single hypothesis covers 4 of 10 boxes, with 8 hypotheses in all: 2 * 4 / 18."""
    gt = [fr((1, A_BOX))] * 10
    hyp = [fr((1, A_BOX))] * 4 + [fr()] * 2 + [fr((2, A_BOX))] * 4
    c = evaluate_sequence(gt, hyp)
    assert (c.misses, c.false_positives, c.id_switches) == (2, 0, 1)
    assert c.mota == pytest.approx(0.7) and c.idf1 == pytest.approx(8 / 18)


def test_false_positives_and_the_iou_threshold() -> None:
    """Hypothesis 5 sits at IoU 1/3 (< 0.5) of A in 3 frames: each is a miss and a false positive."""
    shifted = [5, 0, 15, 10]  # IoU with A_BOX = 50 / 150
    gt = [fr((1, A_BOX))] * 6
    hyp = [fr((5, A_BOX))] * 3 + [fr((5, shifted))] * 3
    c = evaluate_sequence(gt, hyp)
    assert (c.matches, c.misses, c.false_positives, c.id_switches) == (3, 3, 3, 0)
    assert c.mota == pytest.approx(0.0) and c.idf1 == pytest.approx(6 / 12)
    loose = evaluate_sequence(gt, hyp, iou_threshold=0.3)
    assert loose.matches == 6 and loose.motp == pytest.approx((3 + 3 * 50 / 150) / 6)


def test_a_still_valid_correspondence_is_kept_over_a_better_overlap() -> None:
    """Frame 1: A and B stand close; hypothesis 1 (A's track) moved onto B's box and hypothesis 2
    onto A's. Both still overlap their old objects with IoU 70/130 >= 0.5, so CLEAR-MOT keeps the
    correspondences: no switch, although re-matching by best IoU would report two."""
    a, b = [0, 0, 10, 10], [3, 0, 13, 10]
    gt = [fr((1, a), (2, FAR)), fr((1, a), (2, b))]
    hyp = [fr((1, a), (2, FAR)), fr((1, b), (2, a))]
    c = evaluate_sequence(gt, hyp)
    assert c.id_switches == 0 and c.matches == 4
    assert c.motp == pytest.approx((2 + 2 * 70 / 130) / 4)  # frame 0: IoU 1 twice; frame 1: 70/130 twice


def test_counts_add_over_sequences() -> None:
    one = evaluate_sequence([fr((1, A_BOX))] * 4, [fr((1, A_BOX))] * 4)
    two = evaluate_sequence([fr((1, A_BOX))] * 6, [fr()] * 6)
    total = one + two
    assert (total.frames, total.objects, total.idtp, total.misses) == (10, 10, 4, 6)
    assert total.idf1 == pytest.approx(8 / 14) and total.mota == pytest.approx(0.4)
    assert MotCounts().mota == 1.0


def test_bad_frames_are_input_errors() -> None:
    acc = MotAccumulator()
    with pytest.raises(InputError):
        acc.update([1, 1], [A_BOX, B_BOX], [], [])
    with pytest.raises(InputError):
        acc.update([1, 2], [A_BOX], [], [])
    with pytest.raises(InputError):
        evaluate_sequence([fr()] * 2, [fr()] * 3)


def test_ignored_ground_truth_neither_rewards_nor_punishes() -> None:
    """B is marked ignored: the hypothesis on B is dropped (no false positive), B is no miss; the
    hypothesis far from everything stays a false positive."""
    acc = MotAccumulator()
    gt_ids, gt_boxes = fr((1, A_BOX), (2, B_BOX))
    hyp_ids, hyp_boxes = fr((1, A_BOX), (2, B_BOX), (3, FAR))
    acc.update(gt_ids, gt_boxes, hyp_ids, hyp_boxes, gt_ignore=[False, True])
    c = acc.counts()
    assert (c.objects, c.hypotheses, c.matches, c.misses, c.false_positives) == (1, 2, 1, 0, 1)
    assert c.idf1 == pytest.approx(2 * 1 / 3)
    with pytest.raises(InputError):
        acc.update(gt_ids, gt_boxes, hyp_ids, hyp_boxes, gt_ignore=[True])
