"""NumPy reference post-processing: candidate filter -> class-aware NMS -> scale back -> fusion.

This is the readable definition that the C++ core must match bit for bit; speed is the C++ core's job.
Arithmetic follows the official code's dtypes: coordinates and scores stay float32 (threshold
comparisons included, as torch compares a float32 tensor with a Python float in float32), the NMS IoU
test and the fusion distances are float64.

Compatibility modes (``PostprocessConfig.compat``):

``"official"``
    Reproduces the official ``val.run_nms`` + ``val.post_process_batch`` output. Its clip step
    treats the first four numbers of every row as a box, so of the pose keypoints only keypoints 0
    and 1 are clipped to the image; the others may lie outside it. Person boxes are clipped and
    rounded to whole pixels; keypoint objects are fused using the centres of their clipped boxes.
``"default"``
    The same candidates, NMS and fusion rule, but fusion compares unclipped pose keypoints with
    unclipped keypoint-object centres (clipping first can pull a keypoint near the border onto the
    wrong side of the tolerance, or move a centre off its keypoint). Afterwards every keypoint is
    clipped into the image, and person boxes are clipped but keep their sub-pixel values.

Non-finite inputs: a row whose objectness or box (cx, cy, w, h) is not finite is dropped; NaN class
scores count as -inf (a row with only NaN class scores is dropped); NaN keypoint coordinates pass
through, never win a fusion match, and stay NaN in the output.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from kapao_edge.postprocess.config import Poses, PostprocessConfig
from kapao_edge.postprocess.inputs import check_inputs, num_keypoints_of

CLASS_OFFSET = np.float32(4096.0)  # boxes of class c are shifted by c * 4096 px so classes never overlap


def _candidates(
    pred_image: np.ndarray, conf_thres: float, classes: Iterable[int] | None, max_nms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows that may enter NMS: ``(rows (n, No), conf (n,), best class (n,))`` in row order."""
    num_classes = num_keypoints_of(pred_image.shape[1]) + 1
    threshold = np.float32(conf_thres)
    rows = pred_image[pred_image[:, 4] > threshold]  # (n, No); NaN objectness fails the test
    class_scores = rows[:, 5 : 5 + num_classes] * rows[:, 4:5]  # (n, C) float32
    is_nan = np.isnan(class_scores)  # (n, C)
    class_scores = np.where(is_nan, np.float32(-np.inf), class_scores)  # (n, C)
    best = np.argmax(class_scores, axis=1)  # (n,) first index of the maximum
    conf = class_scores[np.arange(len(rows)), best]  # (n,)
    keep = (conf > threshold) & ~is_nan.all(axis=1) & np.isfinite(rows[:, :5]).all(axis=1)  # (n,)
    if classes is not None:
        keep &= np.isin(best, np.asarray(list(classes), dtype=np.int64))
    rows, conf, best = rows[keep], conf[keep], best[keep]
    if len(rows) > max_nms:  # the most confident max_nms, equal scores in row order
        top = np.sort(np.argsort(-conf, kind="stable")[:max_nms])
        rows, conf, best = rows[top], conf[top], best[top]
    return rows, conf, best


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    half_wh = xywh[:, 2:4] / np.float32(2.0)  # (n, 2)
    return np.concatenate([xywh[:, :2] - half_wh, xywh[:, :2] + half_wh], axis=1)  # (n, 4) float32


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, iou_thres: float, max_keep: int) -> np.ndarray:
    """Indices kept by greedy NMS, best score first, mirroring torchvision's CPU kernel arithmetic.

    Visiting order is score-descending with ties in index order (a stable sort); each kept box
    suppresses every later box whose IoU with it is greater than ``iou_thres``.
    """
    order = np.argsort(-scores, kind="stable")  # (n,)
    x1, y1, x2, y2 = boxes.T  # each (n,) float32
    areas = (x2 - x1) * (y2 - y1)  # (n,) float32, no +1
    suppressed = np.zeros(len(boxes), dtype=bool)
    kept: list[int] = []
    with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 IoU is NaN and suppresses nothing
        for rank, i in enumerate(order):
            if suppressed[i]:
                continue
            kept.append(int(i))
            if len(kept) == max_keep:  # later boxes can no longer change the first max_keep
                break
            later = order[rank + 1 :]
            later = later[~suppressed[later]]  # (m,)
            inter_w = np.maximum(np.float32(0), np.minimum(x2[i], x2[later]) - np.maximum(x1[i], x1[later]))
            inter_h = np.maximum(np.float32(0), np.minimum(y2[i], y2[later]) - np.maximum(y1[i], y1[later]))
            inter = inter_w * inter_h  # (m,) float32
            iou = inter / (areas[i] + areas[later] - inter)  # (m,) float32
            suppressed[later[iou.astype(np.float64) > float(iou_thres)]] = True
    return np.asarray(kept, dtype=np.int64)


def non_max_suppression(
    pred_image: np.ndarray,
    conf_thres: float,
    iou_thres: float,
    classes: Iterable[int] | None = None,
    max_det: int = 300,
    max_nms: int = 30000,
) -> np.ndarray:
    """Class-aware NMS of one image's (N, No) predictions -> (M, 6 + 2K) rows
    ``[x1, y1, x2, y2, conf, cls, k0x, k0y, ...]`` in network-input pixels, confidence-descending."""
    num_keypoints = num_keypoints_of(pred_image.shape[1])
    rows, conf, best = _candidates(pred_image, conf_thres, classes, max_nms)
    if not len(rows):
        return np.zeros((0, 6 + 2 * num_keypoints), dtype=np.float32)
    boxes = _xywh_to_xyxy(rows[:, :4])  # (n, 4)
    class_ids = best.astype(np.float32)  # (n,)
    offset_boxes = boxes + (class_ids * CLASS_OFFSET)[:, None]  # (n, 4) float32, as NMS sees them
    kept = greedy_nms(offset_boxes, conf, iou_thres, max_det)  # (M,)
    keypoint_xy = rows[:, 5 + num_keypoints + 1 :]  # (n, 2K)
    dets = np.concatenate([boxes, conf[:, None], class_ids[:, None], keypoint_xy], axis=1)  # (n, 6 + 2K)
    return dets[kept].astype(np.float32, copy=False)


def run_nms(pred_image: np.ndarray, config: PostprocessConfig) -> tuple[np.ndarray, np.ndarray]:
    """Person and keypoint-object detections of one image, both (M, 6 + 2K) in NMS order.

    When both runs share the IoU threshold and the keypoint threshold is the stricter one, one run
    over all classes gives the same candidates (the official shortcut, ``max_det`` then counts
    persons and keypoint objects together).
    """
    num_keypoints = num_keypoints_of(pred_image.shape[1])
    if config.combined_nms:
        dets = non_max_suppression(pred_image, config.conf_thres, config.iou_thres, None,
                                   config.max_det, config.max_nms)
        person_dets = dets[dets[:, 5] == 0]
        kp_dets = dets[(dets[:, 4] >= np.float32(config.conf_thres_kp)) & (dets[:, 5] > 0)]
        return person_dets, kp_dets
    person_dets = non_max_suppression(pred_image, config.conf_thres, config.iou_thres, [0],
                                      config.max_det, config.max_nms)
    kp_dets = non_max_suppression(pred_image, config.conf_thres_kp, config.iou_thres_kp,
                                  range(1, num_keypoints + 1), config.max_det, config.max_nms)
    return person_dets, kp_dets


def _to_original(xy: np.ndarray, input_hw: tuple[int, int], original_hw: tuple[int, int]) -> np.ndarray:
    """Undo the letterbox on (..., 2) float32 points: the geometry in float64, applied in float32."""
    (input_h, input_w), (height, width) = input_hw, original_hw
    gain = min(input_h / height, input_w / width)
    pad = np.array([(input_w - width * gain) / 2, (input_h - height * gain) / 2], dtype=np.float32)  # (2,)
    return (xy - pad) / np.float32(gain)  # (..., 2) float32


def _clip_xy(xy: np.ndarray, original_hw: tuple[int, int]) -> np.ndarray:
    """Clip (..., 2) points into the image: x to [0, w], y to [0, h] (NaN stays NaN)."""
    height, width = original_hw
    limits = np.array([width, height], dtype=np.float32)  # (2,)
    return np.clip(xy, np.float32(0), limits)


def fuse_keypoint_objects(
    keypoints: np.ndarray,
    scores: np.ndarray,
    kp_centres: np.ndarray,
    kp_conf: np.ndarray,
    kp_class: np.ndarray,
    config: PostprocessConfig,
) -> None:
    """Algorithm 1 of the paper, in place on ``keypoints`` (P, K, 3).

    Keypoint objects (centres (M, 2), conf (M,), class (M,)) are visited in NMS order; each may take
    over keypoint ``class - 1`` of the nearest participating pose (by its current position) when it
    is closer than ``overwrite_tol`` and more confident than what that keypoint holds now.
    """
    participants = np.flatnonzero(scores > np.float32(config.conf_thres_kp_person))  # (Q,)
    if not len(participants) or not len(kp_conf):
        return
    tolerance = float(config.overwrite_tol)
    for (centre_x, centre_y), conf, cls in zip(kp_centres, kp_conf, kp_class):
        k = int(cls) - 1
        candidates = keypoints[participants, k, :2].astype(np.float64)  # (Q, 2)
        dx = candidates[:, 0] - np.float64(centre_x)
        dy = candidates[:, 1] - np.float64(centre_y)
        distance = np.sqrt(dx * dx + dy * dy)  # (Q,) float64
        is_nan = np.isnan(distance)
        if is_nan.all():
            continue
        nearest = int(np.argmin(np.where(is_nan, np.inf, distance)))  # first minimum
        pose = participants[nearest]
        if conf > keypoints[pose, k, 2] and distance[nearest] < tolerance:
            keypoints[pose, k] = (centre_x, centre_y, conf)


def assemble_poses(
    person_dets: np.ndarray,
    kp_dets: np.ndarray,
    input_hw: tuple[int, int],
    original_hw: tuple[int, int],
    config: PostprocessConfig,
) -> Poses:
    """Turn one image's NMS outputs into poses in original-image pixels (see the module docstring)."""
    num_keypoints = (person_dets.shape[1] - 6) // 2
    num_poses = len(person_dets)
    if num_poses == 0:
        return Poses.empty(num_keypoints)
    official = config.compat == "official"

    scores = person_dets[:, 4].copy()  # (P,)
    boxes = _to_original(person_dets[:, :4].reshape(num_poses, 2, 2), input_hw, original_hw)  # (P, 2, 2)
    keypoint_xy = _to_original(person_dets[:, 6:].reshape(num_poses, num_keypoints, 2), input_hw, original_hw)
    kp_corners = _to_original(kp_dets[:, :4].reshape(-1, 2, 2), input_hw, original_hw)  # (M, 2, 2)
    if official:
        boxes = np.round(_clip_xy(boxes, original_hw))  # half to even, like torch.round
        keypoint_xy[:, :2] = _clip_xy(keypoint_xy[:, :2], original_hw)  # the quirk: keypoints 0 and 1 only
        kp_corners = _clip_xy(kp_corners, original_hw)
    kp_centres = (kp_corners[:, 0] + kp_corners[:, 1]) / np.float32(2.0)  # (M, 2) float32

    keypoints = np.concatenate(  # (P, K, 3): every keypoint starts with confidence 0
        [keypoint_xy, np.zeros((num_poses, num_keypoints, 1), dtype=np.float32)], axis=2
    )
    if config.use_kp_dets:
        fuse_keypoint_objects(keypoints, scores, kp_centres, kp_dets[:, 4], kp_dets[:, 5], config)
    if not official:
        keypoints[..., :2] = _clip_xy(keypoints[..., :2], original_hw)
        boxes = _clip_xy(boxes, original_hw)
    return Poses(
        keypoints=keypoints.astype(np.float32, copy=False),
        boxes=boxes.reshape(num_poses, 4).astype(np.float32, copy=False),
        scores=scores.astype(np.float32, copy=False),
    )


def postprocess_numpy(
    predictions: np.ndarray,
    input_hw: tuple[int, int],
    original_hws: list[tuple[int, int]] | tuple[int, int],
    config: PostprocessConfig | None = None,
) -> list[Poses]:
    """Poses for each image of a (B, N, No) prediction batch, in original-image pixels."""
    config = config if config is not None else PostprocessConfig()
    predictions, input_hw, original_hws = check_inputs(predictions, input_hw, original_hws)
    results = []
    # Non-finite inputs are defined behaviour (module docstring), not something to warn about.
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        for pred_image, original_hw in zip(predictions, original_hws):  # (N, No) per image
            person_dets, kp_dets = run_nms(pred_image, config)
            results.append(assemble_poses(person_dets, kp_dets, input_hw, original_hw, config))
    return results
