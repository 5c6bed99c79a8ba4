"""``predict``'s loop over a file source: drawn frames and a COCO results JSON (PosePipeline does the work)."""

from __future__ import annotations

import contextlib
from typing import Any

from kapao_edge.engines.base import Engine
from kapao_edge.postprocess import PostprocessConfig
from kapao_edge.runtime.pipeline import PosePipeline


def image_id_for(name: str, fallback: int) -> int:
    """COCO image id from a file name such as ``000000000785.jpg`` (785), else ``fallback``."""
    stem = name.rsplit(".", 1)[0]
    return int(stem) if stem.isdigit() else fallback


def predict_source(
    engine: Engine,
    source,
    *,
    out,
    imgsz: int = 640,
    config: PostprocessConfig | None = None,
    save_images: bool = True,
    save_json: bool = True,
    postprocess_backend: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Run the pipeline over every frame of ``source``; write drawn frames and a COCO results JSON.

    Images keep their names under ``out``; a video becomes ``out/<stem>.mp4``. Every file is written
    atomically, so an interrupted run never leaves a truncated output.
    """
    import json
    from pathlib import Path

    import cv2
    from rich.progress import Progress

    from kapao_edge.data import count_frames, iter_frames, source_kind
    from kapao_edge.errors import InputError
    from kapao_edge.eval import results_to_coco
    from kapao_edge.postprocess import cpp_available
    from kapao_edge.utils.io import atomic_path, write_text_atomic
    from kapao_edge.viz import draw_poses

    out = Path(out)
    source = Path(source)
    kind = source_kind(source)
    total = count_frames(source)
    pipeline = PosePipeline(engine, imgsz=imgsz, config=config, postprocess_backend=postprocess_backend)
    results: list[dict[str, Any]] = []
    num_frames = num_poses = 0
    video_writer = None
    video_target = out / f"{source.stem}.mp4"
    with contextlib.ExitStack() as stack:
        if save_images:
            out.mkdir(parents=True, exist_ok=True)
        if kind == "video" and save_images:
            video_tmp = stack.enter_context(atomic_path(video_target))
        bar = stack.enter_context(Progress(transient=True, disable=not progress))
        task = bar.add_task(f"predict {source.name}", total=total)
        for frame in iter_frames(source):
            result = pipeline(frame.image_bgr)
            poses = result.poses
            num_frames += 1
            num_poses += len(poses)
            image_id = frame.index if kind == "video" else image_id_for(frame.path.name, frame.index)
            results.extend(results_to_coco([poses], [image_id]))
            if save_images:
                drawn = draw_poses(frame.image_bgr, poses.keypoints, poses.boxes, poses.scores, pipeline.preset)
                if kind == "video":
                    if video_writer is None:
                        height, width = drawn.shape[:2]
                        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                        video_writer = cv2.VideoWriter(str(video_tmp), fourcc, 30.0, (width, height))
                    video_writer.write(drawn)
                else:
                    target = out / frame.path.name
                    with atomic_path(target) as tmp:  # tmp keeps the suffix cv2 picks the format by
                        if not cv2.imwrite(str(tmp), drawn):
                            raise InputError(f"cannot write {target} (unsupported image format?)")
            bar.advance(task)
        if video_writer is not None:
            video_writer.release()
    summary: dict[str, Any] = {
        "frames": num_frames,
        "poses": num_poses,
        "postprocess_backend": "cpp" if postprocess_backend != "numpy" and cpp_available() else "numpy",
    }
    if save_json:
        results_path = out / "results.json"
        write_text_atomic(results_path, json.dumps(results))
        summary["results_json"] = str(results_path)
    return summary
