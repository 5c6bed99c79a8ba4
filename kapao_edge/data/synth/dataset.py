"""Write a synthetic set in the standard COCO person-keypoints layout.

Image ``i`` draws from its own generator seeded by ``(seed, i)``, so a set is the same byte for byte
whatever the number of worker processes, and the first N images of a larger set equal a set of N.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from kapao_edge.data.synth.scene import SceneStyle, generate_scene, parse_imgsz
from kapao_edge.errors import InputError
from kapao_edge.presets import Preset, get_preset
from kapao_edge.utils.io import write_bytes_atomic, write_text_atomic

ANNOTATIONS_NAME = "person_keypoints.json"
IMAGES_DIR = "images"
JPEG_QUALITY = 92


@dataclass(frozen=True)
class _Job:
    index: int
    seed: int
    preset: str
    size: tuple[int, int]
    style: SceneStyle
    images_dir: str


def image_id_of(index: int) -> int:
    return index + 1  # COCO ids start at 1; 0 reads as "missing" in some tools


def file_name_of(index: int) -> str:
    return f"{image_id_of(index):06d}.jpg"


def _make_image(job: _Job) -> list[dict]:
    """Render, save and annotate one image (runs in a worker process)."""
    rng = np.random.default_rng([job.seed, job.index])
    scene = generate_scene(rng, job.preset, job.size, job.style)
    ok, encoded = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # pragma: no cover - cv2 only fails on broken builds
        raise InputError(f"could not encode image {job.index} as JPEG")
    write_bytes_atomic(Path(job.images_dir) / file_name_of(job.index), encoded.tobytes())
    persons = []
    for kps, box, area in zip(scene.keypoints, scene.boxes_xywh, scene.areas):
        flat = [round(float(v), 2) if c < 2 else int(v) for row in kps for c, v in enumerate(row)]
        persons.append({
            "keypoints": flat,
            "num_keypoints": int((kps[:, 2] > 0).sum()),
            "bbox": [float(v) for v in box],
            "area": float(area),
        })
    return persons


def _categories(preset: Preset) -> list[dict]:
    return [{
        "supercategory": "person",
        "id": 1,
        "name": "person",
        "keypoints": list(preset.keypoint_names),
        "skeleton": [[a + 1, b + 1] for a, b in preset.skeleton],  # COCO numbers keypoints from 1
    }]


def generate_dataset(
    out_dir: str | os.PathLike,
    num_images: int,
    seed: int,
    preset: str | Preset = "coco",
    imgsz: int | tuple[int, int] = 320,
    *,
    style: SceneStyle | None = None,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Path:
    """Write ``images/NNNNNN.jpg`` and ``person_keypoints.json`` under ``out_dir``; return the JSON path.

    ``workers``: processes to render with (None: one per CPU, at most 8; 0 or 1: in this process).
    ``progress`` is called with the number of images finished so far.
    """
    if num_images < 1:
        raise InputError(f"number of images must be at least 1, got {num_images}")
    if seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}")
    preset = get_preset(preset)
    height, width = parse_imgsz(imgsz)
    style = style or SceneStyle()
    out = Path(out_dir)
    images_dir = out / IMAGES_DIR
    try:
        images_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {images_dir}: {exc.strerror or exc}") from None

    jobs = [_Job(i, seed, preset.name, (height, width), style, str(images_dir)) for i in range(num_images)]
    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    per_image: list[list[dict]] = []
    if workers <= 1 or num_images < 8:
        for done, job in enumerate(jobs, 1):
            per_image.append(_make_image(job))
            if progress:
                progress(done)
    else:
        # "spawn", not fork: a process that has loaded torch or cv2 holds thread pools whose locks a
        # forked child inherits mid-use, and such a child can hang forever.
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=spawn, initializer=cv2.setNumThreads, initargs=(1,)
        ) as pool:
            chunk = max(1, min(16, num_images // (4 * workers)))
            for done, persons in enumerate(pool.map(_make_image, jobs, chunksize=chunk), 1):
                per_image.append(persons)
                if progress:
                    progress(done)

    images, annotations = [], []
    for index, persons in enumerate(per_image):
        image_id = image_id_of(index)
        images.append({"id": image_id, "file_name": file_name_of(index), "height": height, "width": width})
        for person in persons:
            annotations.append({
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": 1,
                "iscrowd": 0,
                **person,
            })
    dataset = {
        "info": {
            "description": "kapao-edge synthetic multi-person pose scenes",
            "preset": preset.name,
            "seed": seed,
            "num_images": num_images,
            "image_size": [height, width],
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": _categories(preset),
    }
    json_path = out / ANNOTATIONS_NAME
    write_text_atomic(json_path, json.dumps(dataset, separators=(",", ":")))
    return json_path
