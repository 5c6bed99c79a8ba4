"""Multi-object tracking metrics: CLEAR-MOT (MOTA, MOTP, ID switches) and IDF1, on person boxes.

Written here instead of depending on py-motmetrics: that package pulls pandas and SciPy, which the
project does not use, and its 1.4 release calls NumPy functions that NumPy 2 removed.

Definitions (Bernardin & Stiefelhagen 2008 for CLEAR-MOT; Ristani et al. 2016 for IDF1), with the box
IoU as similarity and ``iou_threshold`` (0.5) as the largest allowed distance:

* Per frame, a ground-truth object keeps the hypothesis it was last matched to (in any earlier frame)
  if that hypothesis is present and still overlaps it enough; the rest are matched by a minimum-cost
  assignment on ``1 - IoU`` over the allowed pairs. A match whose hypothesis differs from the object's
  previous one is an ID switch. Unmatched objects are misses, unmatched hypotheses false positives.
  MOTA = 1 - (misses + false positives + switches) / objects; MOTP here is the mean IoU of matches.
* IDF1: every ground-truth trajectory is matched to at most one hypothesis trajectory (one-to-one,
  over the whole sequence) so as to maximise the frames in which the two overlap enough (IDTP).
  IDF1 = 2 IDTP / (objects + hypotheses), summed over sequences as counts.

Hypotheses are whatever the caller passes: a tracker's detections without a shown id (-1) should be
left out, as a tracker that shows no id claims nothing. Ground truth can be marked ``ignore`` (a
person too hidden to demand, as MOTChallenge does with distractors): before scoring, hypotheses are
matched to all ground truth at the IoU threshold, and those that land on an ignored person are
dropped together with it, so finding such a person is neither a reward nor a false positive.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from kapao_edge.errors import InputError
from kapao_edge.runtime.assignment import linear_assignment
from kapao_edge.runtime.tracker import box_iou


@dataclass(frozen=True)
class MotCounts:
    """Additive counts of one or more sequences; the metrics are properties of them."""

    frames: int = 0
    objects: int = 0  # ground-truth boxes over all frames (person-frames)
    hypotheses: int = 0
    matches: int = 0
    misses: int = 0
    false_positives: int = 0
    id_switches: int = 0
    iou_sum: float = 0.0  # over matches, for MOTP
    idtp: int = 0

    def __add__(self, other: MotCounts) -> MotCounts:
        return MotCounts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    @property
    def mota(self) -> float:
        return 1.0 - (self.misses + self.false_positives + self.id_switches) / max(self.objects, 1)

    @property
    def motp(self) -> float:
        return self.iou_sum / self.matches if self.matches else 0.0

    @property
    def idf1(self) -> float:
        total = self.objects + self.hypotheses
        return 2.0 * self.idtp / total if total else 1.0

    @property
    def idp(self) -> float:
        return self.idtp / self.hypotheses if self.hypotheses else 1.0

    @property
    def idr(self) -> float:
        return self.idtp / self.objects if self.objects else 1.0

    @property
    def switches_per_100(self) -> float:
        """ID switches per 100 ground-truth person-frames."""
        return 100.0 * self.id_switches / max(self.objects, 1)

    def summary(self) -> dict[str, float]:
        return {
            "frames": self.frames, "objects": self.objects, "hypotheses": self.hypotheses,
            "mota": self.mota, "motp": self.motp, "idf1": self.idf1, "idp": self.idp, "idr": self.idr,
            "id_switches": self.id_switches, "switches_per_100": self.switches_per_100,
            "misses": self.misses, "false_positives": self.false_positives,
        }


@dataclass
class MotAccumulator:
    """Feed one sequence frame by frame with ``update``; ``counts()`` gives its totals."""

    iou_threshold: float = 0.5
    _last_match: dict[int, int] = field(default_factory=dict)  # object id -> hypothesis id
    _overlap: dict[tuple[int, int], int] = field(default_factory=dict)  # (object, hyp) -> frames
    _object_frames: dict[int, int] = field(default_factory=dict)
    _hyp_frames: dict[int, int] = field(default_factory=dict)
    _counts: MotCounts = field(default_factory=MotCounts)

    def update(self, gt_ids, gt_boxes, hyp_ids, hyp_boxes, gt_ignore=None) -> None:
        """One frame: ids (N,) and x1y1x2y2 boxes (N, 4) of the ground truth and of the tracker;
        ``gt_ignore`` (G,) bool marks ground truth that is not scored (see the module docstring)."""
        gt_ids, gt_boxes = _check("ground truth", gt_ids, gt_boxes)
        hyp_ids, hyp_boxes = _check("hypothesis", hyp_ids, hyp_boxes)
        if gt_ignore is not None and np.any(gt_ignore):
            ignore = np.asarray(gt_ignore, bool).reshape(-1)  # (G,)
            if len(ignore) != len(gt_ids):
                raise InputError(f"gt_ignore has {len(ignore)} entries for {len(gt_ids)} ground-truth boxes")
            iou = box_iou(gt_boxes, hyp_boxes)  # (G, H)
            drop = np.zeros(len(hyp_ids), bool)
            rows, cols = linear_assignment(np.where(iou >= self.iou_threshold, 1.0 - iou, 2.0))
            for r, c in zip(rows, cols):
                drop[c] = iou[r, c] >= self.iou_threshold and ignore[r]
            gt_ids, gt_boxes = gt_ids[~ignore], gt_boxes[~ignore]
            hyp_ids, hyp_boxes = hyp_ids[~drop], hyp_boxes[~drop]
        iou = box_iou(gt_boxes, hyp_boxes)  # (G, H)
        allowed = iou >= self.iou_threshold  # (G, H)

        # IDF1: co-occurrence of every (object, hypothesis) pair that overlaps enough.
        for g, h in zip(*np.nonzero(allowed)):
            key = (int(gt_ids[g]), int(hyp_ids[h]))
            self._overlap[key] = self._overlap.get(key, 0) + 1
        for i in gt_ids.tolist():
            self._object_frames[i] = self._object_frames.get(i, 0) + 1
        for i in hyp_ids.tolist():
            self._hyp_frames[i] = self._hyp_frames.get(i, 0) + 1

        # CLEAR-MOT: keep last correspondences that are still valid, assign the rest.
        hyp_index = {int(h): k for k, h in enumerate(hyp_ids.tolist())}
        pairs: list[tuple[int, int]] = []
        used_g, used_h = set(), set()
        for g, gid in enumerate(gt_ids.tolist()):
            h = hyp_index.get(self._last_match.get(gid, -10**18))
            if h is not None and h not in used_h and allowed[g, h]:
                pairs.append((g, h))
                used_g.add(g)
                used_h.add(h)
        free_g = np.array([g for g in range(len(gt_ids)) if g not in used_g], np.int64)
        free_h = np.array([h for h in range(len(hyp_ids)) if h not in used_h], np.int64)
        if len(free_g) and len(free_h):
            sub = allowed[np.ix_(free_g, free_h)]
            cost = np.where(sub, 1.0 - iou[np.ix_(free_g, free_h)], 2.0)
            for r, c in zip(*linear_assignment(cost)):
                if sub[r, c]:
                    pairs.append((int(free_g[r]), int(free_h[c])))

        switches = 0
        iou_sum = 0.0
        for g, h in pairs:
            gid, hid = int(gt_ids[g]), int(hyp_ids[h])
            previous = self._last_match.get(gid)
            if previous is not None and previous != hid:
                switches += 1
            self._last_match[gid] = hid
            iou_sum += float(iou[g, h])
        c = self._counts
        self._counts = MotCounts(
            frames=c.frames + 1, objects=c.objects + len(gt_ids), hypotheses=c.hypotheses + len(hyp_ids),
            matches=c.matches + len(pairs), misses=c.misses + len(gt_ids) - len(pairs),
            false_positives=c.false_positives + len(hyp_ids) - len(pairs),
            id_switches=c.id_switches + switches, iou_sum=c.iou_sum + iou_sum,
        )

    def counts(self) -> MotCounts:
        """Totals so far, with IDTP from the best one-to-one matching of whole trajectories."""
        objects = sorted(self._object_frames)
        hyps = sorted(self._hyp_frames)
        idtp = 0
        if objects and hyps and self._overlap:
            row = {o: i for i, o in enumerate(objects)}
            col = {h: j for j, h in enumerate(hyps)}
            overlap = np.zeros((len(objects), len(hyps)))  # (O, Hy) frames overlapping enough
            for (o, h), n in self._overlap.items():
                overlap[row[o], col[h]] = n
            r, c = linear_assignment(-overlap)
            idtp = int(overlap[r, c].sum())
        return MotCounts(**{**{f.name: getattr(self._counts, f.name) for f in fields(MotCounts)}, "idtp": idtp})


def evaluate_sequence(gt_frames, hyp_frames, iou_threshold: float = 0.5) -> MotCounts:
    """Counts for one sequence; each frame is a pair ``(ids (N,), boxes (N, 4))``."""
    gt_frames, hyp_frames = list(gt_frames), list(hyp_frames)
    if len(gt_frames) != len(hyp_frames):
        raise InputError(f"{len(gt_frames)} ground-truth frames but {len(hyp_frames)} tracker frames")
    acc = MotAccumulator(iou_threshold=iou_threshold)
    for (gi, gb), (hi, hb) in zip(gt_frames, hyp_frames):
        acc.update(gi, gb, hi, hb)
    return acc.counts()


def _check(what: str, ids, boxes) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, np.int64).reshape(-1)  # (N,)
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4) if len(ids) else np.zeros((0, 4))  # (N, 4)
    if len(boxes) != len(ids):
        raise InputError(f"{what}: {len(ids)} ids but {len(boxes)} boxes")
    if len(set(ids.tolist())) != len(ids):
        raise InputError(f"{what}: an id appears twice in one frame")
    return ids, boxes
