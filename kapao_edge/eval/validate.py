"""Run an engine over an annotated keypoint set and score it: the loop behind `val` and `parity`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any


from kapao_edge.data.coco import KeypointDataset, load_keypoint_dataset
from kapao_edge.engines.base import Engine
from kapao_edge.errors import InputError
from kapao_edge.eval.coco_eval import evaluate_keypoints, pck, results_to_coco
from kapao_edge.postprocess import Poses, PostprocessConfig


@dataclass
class ValidationResult:
    metrics: dict[str, float]  # AP, AP50, AP75, APM, APL, AR, ... on 0-100
    pck: dict[str, Any]
    results: list[dict]  # COCO keypoint results
    poses: dict[int, Poses] = field(repr=False)  # image id -> poses, for per-detection comparisons
    num_images: int = 0
    seconds: float = 0.0


def predict_dataset(
    engine: Engine,
    dataset: KeypointDataset,
    *,
    imgsz: int = 640,
    config: PostprocessConfig | None = None,
    postprocess_backend: str = "auto",
    progress: bool = True,
    tta: bool = False,
    preprocess: str = "val",
) -> dict[int, Poses]:
    """Poses for every image of ``dataset`` through ``PosePipeline``.

    ``preprocess="val"`` is the official validation path: long side resized to ``imgsz``
    (INTER_AREA when shrinking), then letterboxed without enlarging to the engine's fixed shape, or
    to the image's own rectangle rounded up to 64 for dynamic engines. "host" / "device" measure the
    deployment letterbox instead (the device one runs on the engine's device). ``tta`` runs the
    official augmented inference (scales 0.8, 1, 1.2; the middle pass mirrored). Without
    ``config``: the official val thresholds with what the model file recommends.
    """
    from rich.progress import Progress

    from kapao_edge.runtime.pipeline import PosePipeline

    config = config or PostprocessConfig.named("val", engine.metadata.postprocess)
    pipeline = PosePipeline(
        engine, imgsz=imgsz, config=config, postprocess_backend=postprocess_backend, preprocess=preprocess, tta=tta
    )
    poses_by_id: dict[int, Poses] = {}
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("val", total=len(dataset))
        for index, record in enumerate(dataset.images):
            poses_by_id[record.id] = pipeline(dataset.load_image(index)).poses
            bar.advance(task)
    return poses_by_id


def validate(
    engine: Engine,
    annotations: str | os.PathLike,
    images_dir: str | os.PathLike | None = None,
    *,
    imgsz: int = 640,
    config: PostprocessConfig | None = None,
    postprocess_backend: str = "auto",
    protocol: str = "auto",
    progress: bool = True,
    tta: bool = False,
    preprocess: str = "val",
) -> ValidationResult:
    """AP/AR (pycocotools, the preset's OKS sigmas) and PCK@0.2 of ``engine`` on a keypoint set."""
    dataset = load_keypoint_dataset(annotations, images_dir)
    if dataset.preset.name != engine.preset.name:
        raise InputError(
            f"{dataset.annotations_path.name} has {dataset.preset.num_keypoints} keypoints ({dataset.preset.name}) "
            f"but the model predicts {engine.preset.num_keypoints} ({engine.preset.name})"
        )
    start = time.perf_counter()
    poses_by_id = predict_dataset(
        engine, dataset, imgsz=imgsz, config=config, postprocess_backend=postprocess_backend, progress=progress,
        tta=tta, preprocess=preprocess,
    )
    seconds = time.perf_counter() - start
    image_ids = list(poses_by_id)
    results = results_to_coco([poses_by_id[i] for i in image_ids], image_ids)
    metrics = evaluate_keypoints(dataset.annotations_path, results, dataset.preset, protocol=protocol)
    pck_scores = pck(dataset, results, alpha=0.2)
    return ValidationResult(
        metrics=metrics, pck=pck_scores, results=results, poses=poses_by_id,
        num_images=len(dataset), seconds=seconds,
    )
