"""Persistent person ids across video frames: ByteTrack's two-stage association on boxes and OKS.

Why this shape: a pose model gives every person a box, a score and K keypoints per frame, with no
identity. Linking frames needs (1) a motion model, so a walking person is looked for where they will
be, not where they were; (2) a similarity that tells two overlapping people apart: boxes of crossing
people overlap, their skeletons much less, so the box IoU is averaged with the object keypoint
similarity (OKS, the COCO keypoint metric with the preset's sigmas); (3) ByteTrack's observation that
a partly hidden person's score drops before they vanish: low-score detections are not thrown away but
offered, in a second stage, to the tracks that the confident detections left unmatched; (4) when the
frame is given, the colours of each person's clothes: boxes and skeletons of two similar people who
cross or turn while hidden look alike, their shirts and trousers usually do not.

Rules (all frame counts are calls to ``update``):

* Prediction: each track keeps its last observed box and keypoints and a per-frame velocity of the
  box centre (an exponentially smoothed finite difference: constant velocity). A track last seen
  ``dt`` frames ago is predicted by moving its box and keypoints by ``dt * velocity``; the box keeps
  its last size (a walker's width swings with each stride and is not worth extrapolating).
* Similarity: ``(IoU + OKS) / 2`` between a prediction and a detection; OKS uses the predicted box
  area as the scale. A pair is allowed when the similarity is at least ``match_threshold``.
* Stage 1: detections with ``score >= high_score`` against the confirmed tracks (tracked and lost),
  Hungarian assignment on ``1 - similarity`` (pairs allowed only with each other skip the solver).
* Stage 2: detections with ``low_score <= score < high_score`` against the confirmed tracks matched
  in the previous frame that stage 1 left unmatched (lost tracks are not revived by an unsure
  detection).
* Stage 3: the high-score detections still unmatched against the tentative tracks.
* Stage 4 (recovery, OC-SORT's idea): the high-score detections still unmatched against the confirmed
  tracks still unmatched, compared with where each track was last seen instead of where its velocity
  puts it: a velocity learnt from boxes that shrank behind an occluder, or a person who stopped
  while hidden, would otherwise lose the person.
* Colour cue (only with ``update(poses, image)`` and ``appearance > 0``): each detection's look is
  the mean colour of a grid of points on the torso (between shoulders and hips) and along the
  thighs, placed from its keypoints: a few pixel reads, no network. A track keeps a running average
  of its looks (the newest weighs 0.1), updated only from clear looks (no nearer person, judged by a lower box bottom,
  covers more than 30 % of the box). Where a track has a look, the similarity of every stage
  becomes ``(1 - appearance) * geometric + appearance * exp(-d^2 / (2 * 0.15^2))``, with ``d^2``
  the squared colour distance (0-1 scale, summed over B, G, R, averaged over the parts). These
  constants were tuned on the synthetic tuning seeds only (``benchmarks/tracking.py``).
* Gating: a pair whose boxes overlap with IoU below 0.2 is never matched (a tiny spurious box can
  have keypoints close to a person's and a high OKS).
* Birth and confirmation: an unmatched high-score detection starts a tentative track. A tentative
  track is confirmed, and given the next id (1, 2, ...), in the frame of its ``min_hits``-th
  consecutive match; a tentative track that misses a frame is dropped, so one-frame false positives
  never consume an id. Until confirmation its detections get -1.
* Loss: a confirmed track that misses a frame is lost; it keeps its id and keeps moving by its
  velocity for up to ``max_lost`` frames (a short occlusion), then it is removed.
* Determinism: tracks are kept in creation order and detections in input order, and the assignment
  breaks ties by index, so the same input sequence always gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kapao_edge.errors import InputError
from kapao_edge.presets import Preset, get_preset
from kapao_edge.runtime.assignment import linear_assignment

_VELOCITY_SMOOTHING = 0.1  # weight of the newest finite difference in the velocity estimate
_IOU_WEIGHT = 0.5  # similarity = w * IoU + (1 - w) * OKS
_MIN_IOU = 0.2  # pairs whose boxes overlap less are never matched
_MAX_VELOCITY_GAP = 5  # a match after a longer gap restarts the velocity from the position change
_APPEARANCE_SMOOTHING = 0.1  # weight of the newest clear look in a track's running colour average
_APPEARANCE_SCALE = 0.15  # colour distance (0-1 per channel) at which the appearance similarity is exp(-1/2)
_CLEAR_OVERLAP = 0.3  # a detection more covered than this (by another's box) is not a clear look


# Where colours are sampled: (part, start keypoints (left, right), end keypoints (left, right),
# fractions along the segment, fractions across from the left to the right side). A grid over the
# torso between shoulders and hips, and along both thighs: the clothes, which tell people apart. Not
# the head (skin and hair repeat) nor the shins (bare skin, shoes, and the first part to be hidden),
# which on the tuning seeds made a person's own colours vary twice as much.
_PARTS = (
    ("torso", ("left_shoulder", "right_shoulder"), ("left_hip", "right_hip"), (0.2, 0.35, 0.5, 0.65, 0.8),
     (0.2, 0.4, 0.6, 0.8)),
    ("thighs", ("left_hip", "right_hip"), ("left_knee", "right_knee"), (0.2, 0.4, 0.6, 0.8), (0.0, 1.0)),
)


def appearance_layout(preset: Preset) -> tuple[np.ndarray, np.ndarray]:
    """Sampling weights (S, K): each sample point is a fixed blend of keypoints, so all points of all
    people come from one matrix product; and the part averaging (C, S) over the S points."""
    index = {name: i for i, name in enumerate(preset.keypoint_names)}
    needed = {name for part in _PARTS for pair in part[1:3] for name in pair}
    missing = sorted(needed - set(index))
    if missing:
        raise InputError(f"the {preset.name} preset lacks the keypoints {missing} that place the colour samples; "
                         "pass appearance=0 to track without colours")
    rows, parts = [], []
    for part, (left_a, right_a), (left_b, right_b), along, across in _PARTS:
        for t in along:
            for u in across:
                w = np.zeros(preset.num_keypoints)
                for (a, b), side in (((left_a, left_b), 1.0 - u), ((right_a, right_b), u)):
                    w[index[a]] += side * (1.0 - t)
                    w[index[b]] += side * t
                rows.append(w)
                parts.append(part)
    names = [p[0] for p in _PARTS]
    average = np.array([[1.0 if q == name else 0.0 for q in parts] for name in names])  # (C, S)
    return np.stack(rows), average / average.sum(axis=1, keepdims=True)


def appearance_descriptors(image: np.ndarray, keypoints: np.ndarray, layout: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Mean colour (0-1) of each clothing part of each person: (P, K, 2) keypoints -> (P, C * 3).

    A few pixel reads per person, no network: cheap enough for every frame. Points outside the image
    are clamped to its border."""
    weights, average = layout
    h, w = image.shape[:2]
    count, k = keypoints.shape[:2]
    points = (weights @ keypoints.transpose(1, 0, 2).reshape(k, 2 * count)).astype(np.intp)  # (S, P * 2)
    x = np.minimum(np.maximum(points[:, 0::2], 0), w - 1)  # (S, P)
    y = np.minimum(np.maximum(points[:, 1::2], 0), h - 1)  # (S, P)
    colours = image[y, x].reshape(len(weights), 3 * count)  # (S, P * 3)
    looks = (average @ colours) * (1.0 / 255.0)  # (C, P * 3)
    return looks.reshape(len(average), count, 3).transpose(1, 0, 2).reshape(count, -1)  # (P, C * 3)


@dataclass
class _Track:
    box: np.ndarray  # (4,) last observed x1, y1, x2, y2
    keypoints: np.ndarray  # (K, 2) last observed x, y
    velocity: np.ndarray  # (2,) box centre, pixels per frame
    last_frame: int  # frame of the last match
    hits: int  # consecutive matched frames (for confirmation)
    track_id: int = -1  # shown id; -1 while tentative
    has_velocity: bool = False
    appearance: np.ndarray | None = None  # (C * 3,) running mean of clear looks; None until one

    def observe(self, box: np.ndarray, keypoints: np.ndarray, frame: int) -> None:
        dt = frame - self.last_frame
        step = 0.5 * ((box[:2] + box[2:]) - (self.box[:2] + self.box[2:])) / dt  # (2,) centre change
        if not self.has_velocity or dt > _MAX_VELOCITY_GAP:
            self.velocity = step
        else:
            self.velocity = (1 - _VELOCITY_SMOOTHING) * self.velocity + _VELOCITY_SMOOTHING * step
        self.has_velocity = True
        self.hits = self.hits + 1 if dt == 1 else 1
        self.box, self.keypoints, self.last_frame = box, keypoints, frame

    def look(self, descriptor: np.ndarray) -> None:
        """Fold in a clear look (C * 3,) at the person's clothes."""
        if self.appearance is None:
            self.appearance = descriptor
        else:
            self.appearance = (1 - _APPEARANCE_SMOOTHING) * self.appearance + _APPEARANCE_SMOOTHING * descriptor


def _uncovered(boxes: np.ndarray) -> np.ndarray:
    """(P, 4) -> (P,) bool: no box of a nearer person covers more than ``_CLEAR_OVERLAP`` of this one.

    On a ground plane the nearer of two people has their feet lower in the image (a larger box
    bottom), and is the one drawn on top: the person in front of a crossing still gives a clear look."""
    inter = _intersection(boxes, boxes)  # (P, P)
    inter[boxes[:, None, 3] >= boxes[None, :, 3]] = 0.0  # (P, P) only people standing nearer cover (and itself)
    area = np.maximum(boxes[:, 2:] - boxes[:, :2], 1e-6).prod(axis=1)  # (P,)
    return inter.max(axis=1, initial=0.0) <= _CLEAR_OVERLAP * area


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4) x (B, 4) x1y1x2y2 -> (A, B) intersection areas."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # (A, B, 2)
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])  # (A, B, 2)
    return np.maximum(rb - lt, 0.0).prod(axis=2)  # (A, B)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4) x (B, 4) x1y1x2y2 -> (A, B) intersection over union (0 for empty boxes)."""
    inter = _intersection(a, b)  # (A, B)
    area_a = np.maximum(a[:, 2:] - a[:, :2], 0.0).prod(axis=1)  # (A,)
    area_b = np.maximum(b[:, 2:] - b[:, :2], 0.0).prod(axis=1)  # (B,)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def keypoint_similarity(a: np.ndarray, b: np.ndarray, areas: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """OKS between (A, K, 2) and (B, K, 2) keypoints, scaled by the (A,) areas of the first set.

    COCO's definition: mean over keypoints of exp(-d^2 / (2 * area * (2 * sigma)^2)).
    """
    d2 = ((a[:, None] - b[None]) ** 2).sum(axis=3)  # (A, B, K)
    var = (2.0 * sigmas) ** 2  # (K,)
    e = d2 / (2.0 * np.maximum(areas, 1.0)[:, None, None] * var)  # (A, B, K)
    return np.exp(-e).mean(axis=2)  # (A, B)


class PoseTracker:
    """Gives every person a persistent id; see the module docstring for the rules."""

    def __init__(
        self,
        preset: str | Preset = "coco",
        *,
        high_score: float = 0.4,
        low_score: float = 0.1,
        match_threshold: float = 0.3,
        max_lost: int = 30,
        min_hits: int = 2,
        appearance: float = 0.5,
    ) -> None:
        self.preset = get_preset(preset)
        if not 0.0 <= low_score <= high_score <= 1.0:
            raise InputError(f"need 0 <= low_score <= high_score <= 1, got {low_score} and {high_score}")
        if not 0.0 < match_threshold <= 1.0:
            raise InputError(f"match_threshold must be in (0, 1], got {match_threshold}")
        if not 0.0 <= appearance <= 1.0:
            raise InputError(f"appearance (the colour cue's weight) must be in [0, 1], got {appearance}")
        if max_lost < 0 or min_hits < 1:
            raise InputError(f"need max_lost >= 0 and min_hits >= 1, got {max_lost} and {min_hits}")
        self.high_score = float(high_score)
        self.low_score = float(low_score)
        self.match_threshold = float(match_threshold)
        self.max_lost = int(max_lost)
        self.min_hits = int(min_hits)
        self.appearance = float(appearance)
        self._sigmas = np.asarray(self.preset.oks_sigmas, np.float64)  # (K,)
        self._layout = appearance_layout(self.preset) if self.appearance > 0 else None
        self._per_part = 1.0 / len(_PARTS)  # 1 / C
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (a new video or a camera cut)."""
        self._tracks: list[_Track] = []
        self._frame = 0
        self._next_id = 1

    def update(self, poses, image: np.ndarray | None = None) -> np.ndarray:
        """Ids (P,) int64 for the poses of the next frame, -1 where a detection has no shown id.

        ``image``: the frame the poses came from (H, W, 3), in the poses' pixel coordinates. With it
        the clothes' colours help tell people apart; without it only boxes, skeletons and motion do."""
        keypoints = np.asarray(poses.keypoints, np.float64)  # (P, K, 3)
        boxes = np.asarray(poses.boxes, np.float64)  # (P, 4)
        scores = np.asarray(poses.scores, np.float64)  # (P,)
        count = len(scores)
        if keypoints.shape[1:] != (self.preset.num_keypoints, 3) and count:
            raise InputError(
                f"poses have {keypoints.shape[1]} keypoints, the {self.preset.name} preset {self.preset.num_keypoints}"
            )
        if image is not None and (not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3):
            raise InputError(f"the tracker's image must be an (H, W, 3) array, got {getattr(image, 'shape', type(image))}")
        looks = clear = None
        if image is not None and self.appearance > 0 and count:
            looks = appearance_descriptors(image, keypoints[:, :, :2], self._layout)  # (P, C * 3)
            clear = _uncovered(boxes)  # (P,)
        self._frame += 1
        frame = self._frame
        ids = np.full(count, -1, np.int64)
        track_of = np.full(count, -1, np.int64)  # (P,) index into self._tracks

        tracks = self._tracks
        if tracks:
            # Boxes and keypoints moved by the centre velocity. Only the centre moves: a walker's box
            # width swings with every stride, and extrapolating that through an occlusion would blow it up.
            shift = (np.array([frame - t.last_frame for t in tracks], np.float64)[:, None]
                     * np.array([t.velocity for t in tracks]))  # (T, 2)
            pred_boxes = np.array([t.box for t in tracks]) + np.concatenate([shift, shift], axis=1)  # (T, 4)
            pred_kps = np.array([t.keypoints for t in tracks]) + shift[:, None, :]  # (T, K, 2)
        else:
            pred_boxes = np.zeros((0, 4))
            pred_kps = np.zeros((0, self.preset.num_keypoints, 2))
        if count and tracks:
            similarity = self._similarity(pred_boxes, pred_kps, tracks, boxes, keypoints[:, :, :2], looks)  # (T, P)
        else:
            similarity = np.zeros((len(tracks), count))

        high = np.nonzero(scores >= self.high_score)[0]
        low = np.nonzero((scores >= self.low_score) & (scores < self.high_score))[0]
        confirmed = np.array([i for i, t in enumerate(tracks) if t.track_id >= 0], np.int64)
        tentative = np.array([i for i, t in enumerate(tracks) if t.track_id < 0], np.int64)
        matched = self._associate(similarity, confirmed, high, track_of)
        recent = np.array([i for i in confirmed if tracks[i].last_frame == frame - 1 and i not in matched], np.int64)
        self._associate(similarity, recent, low, track_of)
        self._associate(similarity, tentative, high[track_of[high] < 0], track_of)
        if count:
            # Recovery: the unmatched high-score detections against the unmatched confirmed tracks
            # where they were last seen, not where the velocity says they are now.
            taken = set(track_of.tolist())
            idle = np.array([i for i in confirmed if i not in taken], np.int64)
            left = high[track_of[high] < 0]
            if len(idle) and len(left):
                last_boxes = np.stack([tracks[i].box for i in idle])  # (t, 4)
                last_kps = np.stack([tracks[i].keypoints for i in idle])  # (t, K, 2)
                sim = self._similarity(last_boxes, last_kps, [tracks[i] for i in idle], boxes[left],
                                       keypoints[left, :, :2], None if looks is None else looks[left])  # (t, d)
                recovered = np.full(len(left), -1, np.int64)
                self._associate(sim, np.arange(len(idle)), np.arange(len(left)), recovered)
                track_of[left[recovered >= 0]] = idle[recovered[recovered >= 0]]
        for det in np.nonzero(track_of >= 0)[0]:
            track = tracks[track_of[det]]
            track.observe(boxes[det], keypoints[det, :, :2], frame)
            if looks is not None and clear[det]:
                track.look(looks[det])
            if track.track_id < 0 and track.hits >= self.min_hits:
                track.track_id = self._next_id
                self._next_id += 1
            ids[det] = track.track_id
        survivors = []
        for track in tracks:
            if track.last_frame == frame:
                survivors.append(track)
            elif track.track_id >= 0 and frame - track.last_frame <= self.max_lost:
                survivors.append(track)  # lost: kept for a short occlusion
        for det in high:
            if track_of[det] < 0:
                track = _Track(box=boxes[det], keypoints=keypoints[det, :, :2], velocity=np.zeros(2),
                               last_frame=frame, hits=1)
                if looks is not None and clear[det]:
                    track.look(looks[det])
                if self.min_hits <= 1:
                    track.track_id = self._next_id
                    self._next_id += 1
                    ids[det] = track.track_id
                survivors.append(track)
        self._tracks = survivors
        return ids

    def _similarity(self, track_boxes: np.ndarray, track_kps: np.ndarray, tracks: list[_Track], boxes: np.ndarray,
                    keypoints: np.ndarray, looks: np.ndarray | None) -> np.ndarray:
        """(T, 4), (T, K, 2) of the tracks x (P, 4), (P, K, 2) of the detections -> (T, P): the mean of
        box IoU and OKS, mixed with the colour cue, and 0 for pairs whose boxes overlap too little."""
        areas = np.maximum(track_boxes[:, 2:] - track_boxes[:, :2], 0.0).prod(axis=1)  # (T,)
        iou = box_iou(track_boxes, boxes)  # (T, P)
        similarity = (_IOU_WEIGHT * iou + (1 - _IOU_WEIGHT)
                      * keypoint_similarity(track_kps, keypoints, areas, self._sigmas))  # (T, P)
        similarity = self._with_appearance(similarity, tracks, looks)
        similarity[iou < _MIN_IOU] = 0.0
        return similarity

    def _with_appearance(self, similarity: np.ndarray, tracks: list[_Track], looks: np.ndarray | None) -> np.ndarray:
        """Mix the colour similarity into the (T, P) geometric one where the track has a look.

        A covered detection's look is compared too, at full weight: on the tuning seeds, discounting
        it lost more identities in crossings than the colours it borrows from the person in front."""
        known = [i for i, t in enumerate(tracks) if t.appearance is not None]
        if looks is None or not known:
            return similarity
        stored = np.stack([tracks[i].appearance for i in known])  # (t, C * 3)
        d2 = ((stored[:, None] - looks[None]) ** 2).sum(axis=2) * self._per_part  # (t, P) mean over parts
        colour = np.exp(-d2 / (2.0 * _APPEARANCE_SCALE**2))  # (t, P)
        mixed = similarity.copy()
        mixed[known] = (1.0 - self.appearance) * similarity[known] + self.appearance * colour
        return mixed

    def _associate(self, similarity: np.ndarray, track_rows: np.ndarray, dets: np.ndarray,
                   track_of: np.ndarray) -> set[int]:
        """Hungarian assignment of ``dets`` to ``track_rows``; writes ``track_of``, returns matched rows."""
        if len(track_rows) == 0 or len(dets) == 0:
            return set()
        sim = similarity[np.ix_(track_rows, dets)]  # (t, d)
        allowed = sim >= self.match_threshold  # (t, d)
        # A pair allowed only with each other needs no assignment (the common case: people apart);
        # the Hungarian method runs on what is left, where people compete.
        per_row, per_col = allowed.sum(axis=1), allowed.sum(axis=0)  # (t,), (d,)
        lone = allowed & (per_row[:, None] == 1) & (per_col[None, :] == 1)  # (t, d)
        pairs = list(zip(*np.nonzero(lone)))
        rest_r = np.nonzero((per_row > 0) & ~lone.any(axis=1))[0]
        rest_c = np.nonzero((per_col > 0) & ~lone.any(axis=0))[0]
        if len(rest_r) and len(rest_c):
            sub = sim[np.ix_(rest_r, rest_c)]
            cost = np.where(sub >= self.match_threshold, 1.0 - sub, 2.0)  # forbidden pairs cost more
            for r, c in zip(*linear_assignment(cost)):
                if sub[r, c] >= self.match_threshold:
                    pairs.append((rest_r[r], rest_c[c]))
        matched = set()
        for r, c in pairs:
            track_of[dets[c]] = track_rows[r]
            matched.add(int(track_rows[r]))
        return matched

    @property
    def num_tracks(self) -> int:
        """Live tracks: tracked, tentative and lost."""
        return len(self._tracks)
