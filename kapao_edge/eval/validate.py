"""Run an engine over an annotated keypoint set and score it: the loop behind `val` and `parity`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kapao_edge.data import prepare_val, rect_batch_shape
from kapao_edge.data.coco import KeypointDataset, load_keypoint_dataset
from kapao_edge.engines.base import Engine
from kapao_edge.errors import InputError
from kapao_edge.eval.coco_eval import evaluate_keypoints, pck, results_to_coco
from kapao_edge.postprocess import Poses, PostprocessConfig, postprocess


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
) -> dict[int, Poses]:
    """Poses for every image of ``dataset`` through the official validation pre-processing.

    Long side resized to ``imgsz`` (INTER_AREA when shrinking), then letterboxed without enlarging to
    the engine's fixed shape, or to the image's own rectangle rounded up to 64 for dynamic engines.
    ``tta`` runs the official augmented inference (scales 0.8, 1, 1.2; the middle pass mirrored).
    Without ``config``: the official val thresholds with what the model file recommends.
    """
    from rich.progress import Progress

    config = config or PostprocessConfig.named("val", engine.metadata.postprocess)
    fixed_hw = engine.metadata.default_hw
    run = _augmented(engine) if tta else engine
    poses_by_id: dict[int, Poses] = {}
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("val", total=len(dataset))
        for index, record in enumerate(dataset.images):
            image = dataset.load_image(index)
            batch_hw = fixed_hw or rect_batch_shape([image.shape[:2]], imgsz)
            chw, info = prepare_val(image, imgsz, batch_hw=batch_hw)  # (3, H, W)
            predictions = run(chw[None])  # (1, N, No)
            poses_by_id[record.id] = postprocess(
                predictions, info.input_hw, [info.original_hw], config, backend=postprocess_backend
            )[0]
            bar.advance(task)
    return poses_by_id


def _augmented(engine: Engine) -> Callable[[np.ndarray], np.ndarray]:
    """The engine behind test-time augmentation; TTA resizes the input, so the engine must accept any size."""
    import torch

    from kapao_edge.model.tta import predict_tta

    if not engine.metadata.dynamic_hw:
        height, width = engine.metadata.default_hw
        raise InputError(
            f"test-time augmentation resizes the input, but this {engine.backend} engine is fixed at "
            f"{height}x{width}: export it with dynamic height and width, or drop --tta"
        )
    max_stride = max(engine.metadata.strides)

    def network(images: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(engine(images.numpy()))  # (B, N, No)

    def run(images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            batch = torch.from_numpy(images)  # (B, 3, H, W)
            return predict_tta(network, batch, preset=engine.preset, max_stride=max_stride).numpy()  # (B, N', No)

    return run


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
        tta=tta,
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
