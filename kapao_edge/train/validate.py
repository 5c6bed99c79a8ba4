"""Validation during training: the deployment path (val pre-processing, post-processing, COCO AP)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from kapao_edge.presets import Preset
from kapao_edge.train.labels import ImageAnnotations


@torch.no_grad()
def predict_records(model: torch.nn.Module, records: list[ImageAnnotations], imgsz: int, device: torch.device,
                    batch_size: int = 8) -> list[Any]:
    """One ``Poses`` per record, in the records' original pixel coordinates (official val settings)."""
    from kapao_edge.data import prepare_val, read_image
    from kapao_edge.postprocess import PostprocessConfig, postprocess

    config = PostprocessConfig.official_val()
    was_training = model.training
    model.eval()
    poses = []
    try:
        for start in range(0, len(records), batch_size):
            chunk = records[start:start + batch_size]
            inputs, original_hws = [], []
            for record in chunk:
                chw, info = prepare_val(read_image(record.path), imgsz)
                inputs.append(chw)
                original_hws.append(info.original_hw)
            batch = torch.from_numpy(np.stack(inputs)).to(device)  # (B, 3, S, S)
            predictions = model(batch).float().cpu().numpy()  # (B, N, No)
            poses.extend(postprocess(predictions, (imgsz, imgsz), original_hws, config))
    finally:
        model.train(was_training)
    return poses


def keypoint_ap(annotation_file: str | Path, records: list[ImageAnnotations], poses: list[Any],
                preset: Preset) -> dict[str, float]:
    """Keypoint AP, AP50 and AR (0-100, pycocotools with the preset's OKS sigmas) of one ``Poses`` per record."""
    from kapao_edge.eval import evaluate_keypoints, results_to_coco

    results = results_to_coco(poses, [record.image_id for record in records])
    metrics = evaluate_keypoints(annotation_file, results, preset, protocol="coco")
    return {"ap": metrics["AP"], "ap50": metrics["AP50"], "ar": metrics["AR"]}
