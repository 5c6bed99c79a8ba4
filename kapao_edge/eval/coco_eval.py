"""COCO keypoint AP through pycocotools, PCK, and conversion of poses to COCO result dicts.

pycocotools prints progress and tables on stdout; here it runs silenced and the numbers come back
as a dict on a 0-100 scale. A metric pycocotools cannot define (no ground truth in that size range)
is NaN rather than its -1 marker.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from kapao_edge.data.coco import KeypointDataset, detect_format, find_annotations, keypoint_count, load_keypoint_dataset, read_json
from kapao_edge.errors import InputError
from kapao_edge.presets import Preset, get_preset

COCO_KEYPOINT_METRICS = ("AP", "AP50", "AP75", "APM", "APL", "AR", "AR50", "AR75", "ARM", "ARL")
CROWDPOSE_METRICS = ("AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard")


def results_to_coco(poses_per_image: Iterable[Any], image_ids: Sequence[int]) -> list[dict]:
    """COCO keypoint results: one dict per pose, ``score`` = the pose (person) score.

    Each item of ``poses_per_image`` has ``keypoints`` (P, K, 3) [x, y, conf] and ``scores`` (P,),
    as attributes (``Poses``), dict keys, or a (keypoints, scores) pair.
    """
    poses_list = list(poses_per_image)
    if len(poses_list) != len(image_ids):
        raise InputError(f"got poses for {len(poses_list)} images but {len(image_ids)} image ids")
    results = []
    for poses, image_id in zip(poses_list, image_ids):
        if isinstance(poses, dict):
            keypoints, scores = poses["keypoints"], poses["scores"]
        elif isinstance(poses, (tuple, list)):
            keypoints, scores = poses
        else:
            keypoints, scores = poses.keypoints, poses.scores
        keypoints = np.asarray(keypoints, np.float64)  # (P, K, 3)
        scores = np.asarray(scores, np.float64).reshape(-1)  # (P,)
        if keypoints.size == 0:
            continue
        if keypoints.ndim != 3 or keypoints.shape[2] != 3 or len(keypoints) != len(scores):
            raise InputError(
                f"image {image_id}: keypoints must be (P, K, 3) with one score per pose, "
                f"got {keypoints.shape} and {scores.shape}"
            )
        for kps, score in zip(keypoints, scores):
            results.append({
                "image_id": int(image_id),
                "category_id": 1,
                "keypoints": [round(float(v), 3) for v in kps.reshape(-1)],
                "score": round(float(score), 5),
            })
    return results


def _load_results(results: Sequence[dict] | str | os.PathLike) -> list[dict]:
    if isinstance(results, (str, os.PathLike)):
        path = Path(results)
        if not path.is_file():
            raise InputError(f"results file not found: {path}")
        try:
            results = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(results, list):
        raise InputError("results must be a list of COCO result dicts (image_id, category_id, keypoints, score)")
    return list(results)


def _check_results(results: list[dict], k: int, image_ids: set[int]) -> None:
    for i, res in enumerate(results):
        missing = {"image_id", "keypoints", "score"} - set(res)
        if missing:
            raise InputError(f"result {i} lacks {', '.join(sorted(missing))}")
        if len(res["keypoints"]) != 3 * k:
            raise InputError(f"result {i} has {len(res['keypoints']) // 3} keypoints; the annotations have {k}")
        if res["image_id"] not in image_ids:
            raise InputError(f"result {i} is for image_id {res['image_id']}, which the annotations do not list")


def _percent(value: float) -> float:
    return float("nan") if value < 0 else 100.0 * float(value)


def _evaluate_crowdpose(annotations_path: Path, results: list[dict]) -> dict[str, float]:
    """CrowdPose semantics (easy/medium/hard by crowd index) need the official crowdposetools."""
    from crowdposetools.coco import COCO  # type: ignore[import-not-found]
    from crowdposetools.cocoeval import COCOeval  # type: ignore[import-not-found]

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(annotations_path))
        if not results:
            return {name: 0.0 for name in CROWDPOSE_METRICS}
        dt = gt.loadRes(copy.deepcopy(results))
        evaluator = COCOeval(gt, dt, "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    stats = evaluator.stats
    picks = (0, 1, 2, 5, 6, 7, 8, 9, 10)
    return {name: _percent(stats[i]) for name, i in zip(CROWDPOSE_METRICS, picks)}


def evaluate_keypoints(
    annotations_json: str | os.PathLike,
    results: Sequence[dict] | str | os.PathLike,
    preset: str | Preset = "coco",
    protocol: str = "auto",
) -> dict[str, float]:
    """Keypoint AP/AR (0-100) of ``results`` against a person-keypoints file, with ``preset``'s OKS sigmas.

    An empty result list scores 0. ``protocol`` "auto": CrowdPose files need crowdposetools, because
    pycocotools with CrowdPose sigmas is not the CrowdPose protocol (no easy/medium/hard split);
    "coco" forces pycocotools (synthetic 14-keypoint sets, which have no crowd index).
    """
    if protocol not in ("auto", "coco"):
        raise InputError(f"unknown evaluation protocol {protocol!r}; choose 'auto' or 'coco'")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    path = find_annotations(annotations_json)
    preset = get_preset(preset)
    data = read_json(path)
    k = keypoint_count(data, path)
    if k != preset.num_keypoints:
        raise InputError(f"{path.name} has {k} keypoints per person but preset {preset.name!r} expects "
                         f"{preset.num_keypoints}")
    results = _load_results(results)
    _check_results(results, k, {im["id"] for im in data["images"]})

    if protocol == "auto" and detect_format(data) == "crowdpose":
        try:
            import crowdposetools  # type: ignore[import-not-found]  # noqa: F401
        except ImportError:
            raise InputError(
                f"{path.name} is a CrowdPose file: CrowdPose AP (easy/medium/hard) comes from crowdposetools, "
                "and pycocotools with CrowdPose sigmas would give different numbers; install crowdposetools "
                "(or pass protocol='coco' to get plain OKS AP with CrowdPose sigmas)"
            ) from None
        return _evaluate_crowdpose(path, results)

    if not data.get("categories"):
        data = {**data, "categories": [{"id": 1, "name": "person", "keypoints": list(preset.keypoint_names)}]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = data
        gt.createIndex()
        if results:
            dt = gt.loadRes(copy.deepcopy(results))  # loadRes adds area, bbox and id in place
        else:
            dt = COCO()
            dt.dataset = {"images": data["images"], "categories": data["categories"], "annotations": []}
            dt.createIndex()
        evaluator = COCOeval(gt, dt, iouType="keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(preset.oks_sigmas, np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {name: _percent(value) for name, value in zip(COCO_KEYPOINT_METRICS, evaluator.stats)}


def _oks(pred: np.ndarray, gt: np.ndarray, area: float, sigmas: np.ndarray) -> np.ndarray:
    """OKS of predictions (D, K, 2) against one ground truth (K, 3), as pycocotools computes it."""
    labelled = gt[:, 2] > 0  # (K,)
    if not labelled.any():
        return np.zeros(len(pred))
    d2 = ((pred - gt[None, :, :2]) ** 2).sum(axis=2)  # (D, K)
    e = d2 / (2.0 * sigmas) ** 2 / (area + np.spacing(1)) / 2.0
    return np.exp(-e)[:, labelled].mean(axis=1)  # (D,)


def pck(
    gt: str | os.PathLike | KeypointDataset,
    results: Sequence[dict] | str | os.PathLike,
    alpha: float = 0.2,
    preset: str | Preset | None = None,
) -> dict[str, Any]:
    """Percentage of labelled ground-truth keypoints within ``alpha`` x box diagonal of their match.

    Matching, per image: predictions in descending score order (stable) each take the still-unmatched
    ground-truth person with the highest OKS, if that OKS is above 0. Crowd regions and persons with
    no labelled keypoint are not scored. A ground-truth keypoint whose person found no prediction
    counts as a miss, so PCK also penalises missed people.
    """
    dataset = gt if isinstance(gt, KeypointDataset) else load_keypoint_dataset(gt, preset=preset)
    sigmas = np.asarray(dataset.preset.oks_sigmas, np.float64)
    k = dataset.preset.num_keypoints
    results = _load_results(results)
    _check_results(results, k, {record.id for record in dataset.images})
    by_image: dict[int, list[dict]] = {}
    for res in results:
        by_image.setdefault(res["image_id"], []).append(res)

    hits = np.zeros(k)
    totals = np.zeros(k)
    persons = matched = 0
    for record in dataset.images:
        p = record.persons
        keep = (~p.iscrowd) & (p.num_keypoints > 0)
        gts, boxes, areas = p.keypoints[keep], p.boxes_xywh[keep], p.areas[keep]  # (G, K, 3), (G, 4), (G,)
        persons += len(gts)
        preds = sorted(by_image.get(record.id, []), key=lambda r: -r["score"])
        pred_xy = np.array([r["keypoints"] for r in preds], np.float64).reshape(len(preds), k, 3)[:, :, :2]
        oks = np.stack([_oks(pred_xy, g, a, sigmas) for g, a in zip(gts, areas)], axis=1) if len(gts) else None
        assignment = np.full(len(gts), -1)
        for d in range(len(preds)):
            if oks is None:
                break
            scores = np.where(assignment < 0, oks[d], -1.0)  # (G,)
            g = int(np.argmax(scores))
            if scores[g] > 0:
                assignment[g] = d
        for g, gt_kps in enumerate(gts):
            labelled = gt_kps[:, 2] > 0  # (K,)
            totals += labelled
            if assignment[g] < 0:
                continue
            matched += 1
            diagonal = math.hypot(boxes[g, 2], boxes[g, 3])
            dist = np.linalg.norm(pred_xy[assignment[g]] - gt_kps[:, :2], axis=1)  # (K,)
            hits += labelled & (dist <= alpha * diagonal)
    total = totals.sum()
    return {
        "PCK": 100.0 * hits.sum() / total if total else float("nan"),
        "per_keypoint": {
            name: (100.0 * hits[i] / totals[i] if totals[i] else float("nan"))
            for i, name in enumerate(dataset.preset.keypoint_names)
        },
        "alpha": alpha,
        "gt_persons": persons,
        "matched_persons": matched,
    }
