"""A tiny hand-made COCO person-keypoints set: cv2 stick figures with exactly known keypoints."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kapao_edge.presets import COCO

# A standing figure in a unit box (x right, y down), COCO keypoint order.
STICK_FIGURE = np.array([
    [0.50, 0.08], [0.46, 0.05], [0.54, 0.05], [0.42, 0.07], [0.58, 0.07],  # nose, eyes, ears
    [0.35, 0.22], [0.65, 0.22], [0.25, 0.40], [0.75, 0.40], [0.20, 0.55], [0.80, 0.55],  # arms
    [0.40, 0.55], [0.60, 0.55], [0.38, 0.77], [0.62, 0.77], [0.37, 0.98], [0.63, 0.98],  # legs
], dtype=np.float64)


def draw_scene(rng: np.random.Generator, size: int, num_people: int) -> tuple[np.ndarray, list[dict]]:
    image = np.full((size, size, 3), rng.integers(60, 200, 3), dtype=np.uint8)
    people = []
    for _ in range(num_people):
        height = rng.uniform(0.45, 0.8) * size
        width = height * 0.5
        x0 = rng.uniform(0, size - width)
        y0 = rng.uniform(0, size - height)
        points = STICK_FIGURE * [width, height] + [x0, y0]  # (17, 2)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        for a, b in COCO.skeleton:
            cv2.line(image, tuple(np.round(points[a]).astype(int)), tuple(np.round(points[b]).astype(int)), colour, 2)
        cv2.circle(image, tuple(np.round(points[0]).astype(int)), max(int(width * 0.08), 2), colour, -1)
        keypoints = np.concatenate([points, np.full((17, 1), 2.0)], axis=1)
        keypoints[3:5, 2] = rng.integers(0, 2, 2) * 2  # ears sometimes unlabelled
        keypoints[keypoints[:, 2] == 0] = 0
        xs, ys = points[:, 0], points[:, 1]
        people.append({
            "bbox": [float(xs.min()), float(ys.min()), float(xs.max() - xs.min()), float(ys.max() - ys.min())],
            "keypoints": [round(float(v), 2) for v in keypoints.reshape(-1)],
            "num_keypoints": int((keypoints[:, 2] > 0).sum()),
        })
    return image, people


def write_stick_dataset(root: Path, num_images: int, size: int = 128, seed: int = 0) -> Path:
    """Write ``root/images/*.png`` and ``root/person_keypoints.json``; return ``root``."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for index in range(num_images):
        image, people = draw_scene(rng, size, int(rng.integers(1, 3)))
        name = f"{index + 1:04d}.png"
        cv2.imwrite(str(root / "images" / name), image)
        images.append({"id": index + 1, "file_name": name, "height": size, "width": size})
        for person in people:
            annotations.append({"id": len(annotations) + 1, "image_id": index + 1, "category_id": 1, "iscrowd": 0,
                                "area": person["bbox"][2] * person["bbox"][3], **person})
    categories = [{"id": 1, "name": "person", "supercategory": "person", "keypoints": list(COCO.keypoint_names),
                   "skeleton": [[a + 1, b + 1] for a, b in COCO.skeleton]}]
    (root / "person_keypoints.json").write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return root


@pytest.fixture(scope="session")
def stick_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 128-px images with one or two stick figures each."""
    return write_stick_dataset(tmp_path_factory.mktemp("stick"), num_images=6)
