"""Read COCO-format person-keypoint annotations: real COCO, CrowdPose and our synthetic sets.

Everything comes back as arrays per image, so training, calibration and evaluation never touch the
raw JSON. Persons with no labelled keypoints and crowd regions are kept (flagged), because both matter
for evaluation: COCOeval ignores them rather than counting them as misses.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kapao_edge.errors import InputError
from kapao_edge.presets import PRESETS, Preset, get_preset, preset_for_keypoints


@dataclass(frozen=True)
class Persons:
    """Annotations of one image; P may be 0."""

    keypoints: np.ndarray  # (P, K, 3) float32 [x, y, v]
    boxes_xywh: np.ndarray  # (P, 4) float32
    iscrowd: np.ndarray  # (P,) bool
    num_keypoints: np.ndarray  # (P,) int64, labelled keypoints (v > 0)
    areas: np.ndarray  # (P,) float32; box area where the file has none (CrowdPose)
    ids: np.ndarray  # (P,) int64 annotation ids

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class ImageRecord:
    id: int
    file_name: str
    path: Path
    height: int
    width: int
    persons: Persons


@dataclass(frozen=True)
class KeypointDataset:
    annotations_path: Path
    image_dir: Path
    preset: Preset
    format: str  # "coco" or "crowdpose"
    images: list[ImageRecord]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> ImageRecord:
        return self.images[index]

    def by_id(self, image_id: int) -> ImageRecord:
        for record in self.images:
            if record.id == image_id:
                return record
        raise InputError(f"{self.annotations_path.name} has no image with id {image_id}")

    def load_image(self, index: int) -> np.ndarray:
        """(H, W, 3) uint8 BGR; grayscale and 4-channel files are converted to 3 channels."""
        import cv2

        path = self.images[index].path
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read image {path} (missing or not an image)")
        return image

    def describe(self) -> str:
        persons = sum(len(r.persons) for r in self.images)
        kind = "CrowdPose-format" if self.format == "crowdpose" else "COCO-format"
        return (
            f"{self.annotations_path.name}: {kind}, {len(self.images)} images, {persons} person annotations, "
            f"K={self.preset.num_keypoints} ({self.preset.name})"
        )


def find_annotations(path: str | os.PathLike) -> Path:
    """The annotation JSON named by ``path``: the file itself, or the one ``*.json`` of a dataset folder.

    A dataset folder (what ``kapao-edge synth`` writes) holds ``images/`` and exactly one ``*.json``, at
    its top level or in ``annotations/``; every command that reads annotations takes either form.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    candidates = sorted(path.glob("*.json")) or sorted((path / "annotations").glob("*.json"))
    if len(candidates) != 1:
        found = ", ".join(p.name for p in candidates) or "none"
        raise InputError(f"{path} must hold exactly one COCO keypoints .json (found: {found}); "
                         "or pass the JSON file itself")
    return candidates[0]


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not isinstance(data, dict) or "images" not in data or "annotations" not in data:
        raise InputError(f"{path} is not a COCO-format annotation file (needs 'images' and 'annotations')")
    return data


def keypoint_count(data: dict, path: str | os.PathLike = "annotations") -> int:
    """K of a COCO-format dict, from its person category or else its first annotation."""
    for category in data.get("categories", []):
        if isinstance(category.get("keypoints"), list) and category["keypoints"]:
            return len(category["keypoints"])
    for ann in data["annotations"]:
        if isinstance(ann.get("keypoints"), list) and ann["keypoints"]:
            return len(ann["keypoints"]) // 3
    raise InputError(
        f"{path} has no keypoint annotations (no category lists 'keypoints'): "
        "is it an instances/detection file rather than person_keypoints?"
    )


def detect_format(data: dict) -> str:
    """'crowdpose' for CrowdPose files (14 keypoints, 'crowdIndex' on images), else 'coco'."""
    images = data.get("images") or [{}]
    if "crowdIndex" in images[0]:
        return "crowdpose"
    names = next((c.get("keypoints") for c in data.get("categories", []) if c.get("keypoints")), None)
    if names is not None and len(names) == 14 and "head" in names and "neck" in names:
        return "crowdpose"
    return "coco"


def _resolve_image_dir(json_path: Path, data: dict, image_dir: str | os.PathLike | None) -> Path:
    if image_dir is not None:
        path = Path(image_dir)
        if not path.is_dir():
            raise InputError(f"image directory not found: {path}")
        return path
    candidates = [json_path.parent / "images", json_path.parent, json_path.parent.parent / "images"]
    first = data["images"][0]["file_name"] if data["images"] else None
    for candidate in candidates:
        if first is not None and (candidate / first).is_file():
            return candidate
    return candidates[0] if candidates[0].is_dir() else json_path.parent


def _persons(anns: list[dict], k: int, path: Path) -> Persons:
    count = len(anns)
    keypoints = np.zeros((count, k, 3), np.float32)  # (P, K, 3)
    boxes = np.zeros((count, 4), np.float32)  # (P, 4)
    iscrowd = np.zeros(count, bool)
    areas = np.zeros(count, np.float32)
    ids = np.zeros(count, np.int64)
    for i, ann in enumerate(anns):
        flat = ann.get("keypoints") or []
        if flat:
            if len(flat) != 3 * k:
                raise InputError(
                    f"{path}: annotation {ann.get('id')} has {len(flat) // 3} keypoints, the file declares {k}"
                )
            keypoints[i] = np.asarray(flat, np.float32).reshape(k, 3)
        boxes[i] = ann.get("bbox") or (0, 0, 0, 0)
        iscrowd[i] = bool(ann.get("iscrowd", 0))
        areas[i] = ann["area"] if "area" in ann else boxes[i, 2] * boxes[i, 3]
        ids[i] = ann.get("id", i)
    num = (keypoints[:, :, 2] > 0).sum(axis=1).astype(np.int64)
    return Persons(keypoints, boxes, iscrowd, num, areas, ids)


def load_keypoint_dataset(
    annotations_path: str | os.PathLike,
    image_dir: str | os.PathLike | None = None,
    preset: str | Preset | None = None,
) -> KeypointDataset:
    """Read a person-keypoints JSON (or a dataset folder holding one). ``preset`` None: inferred from K; given: K must match it.

    ``image_dir`` None: the first of ``<json dir>/images``, ``<json dir>``, ``<json dir>/../images``
    that holds the first listed image.
    """
    path = find_annotations(annotations_path)
    data = read_json(path)
    k = keypoint_count(data, path)
    if preset is None:
        chosen = preset_for_keypoints(k)
    else:
        chosen = get_preset(preset)
        if chosen.num_keypoints != k:
            hint = next((f"; use preset {p.name!r}" for p in PRESETS.values() if p.num_keypoints == k), "")
            raise InputError(
                f"{path.name} has {k} keypoints per person but preset {chosen.name!r} expects "
                f"{chosen.num_keypoints}{hint}"
            )
    directory = _resolve_image_dir(path, data, image_dir)

    person_ids = {c["id"] for c in data.get("categories", []) if c.get("name") == "person"} or {1}
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if ann.get("category_id", 1) in person_ids:
            by_image.setdefault(ann["image_id"], []).append(ann)

    images = []
    for info in sorted(data["images"], key=lambda im: im["id"]):
        anns = sorted(by_image.get(info["id"], []), key=lambda a: a.get("id", 0))
        images.append(ImageRecord(
            id=int(info["id"]),
            file_name=info["file_name"],
            path=directory / info["file_name"],
            height=int(info.get("height", 0)),
            width=int(info.get("width", 0)),
            persons=_persons(anns, k, path),
        ))
    return KeypointDataset(path, directory, chosen, detect_format(data), images)
