"""COCO-format keypoint reader on real COCO and CrowdPose samples, synthetic sets and broken files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from kapao_edge.data.coco import load_keypoint_dataset
from kapao_edge.data.synth import generate_dataset
from kapao_edge.errors import InputError


def _coco_json(coco_sample_dir: Path) -> Path:
    return coco_sample_dir / "person_keypoints_sample.json"


def test_reads_the_coco_sample(coco_sample_dir: Path) -> None:
    ds = load_keypoint_dataset(_coco_json(coco_sample_dir))
    assert ds.preset.name == "coco" and ds.format == "coco"
    assert len(ds) == 4 and sum(len(r.persons) for r in ds.images) == 14
    nums = np.concatenate([r.persons.num_keypoints for r in ds.images])
    assert (nums == 0).sum() == 2  # persons with no labelled keypoint are kept
    raw = json.loads(_coco_json(coco_sample_dir).read_text())
    assert sorted(nums.tolist()) == sorted(a["num_keypoints"] for a in raw["annotations"])
    first = ds.by_id(785)
    assert first.persons.keypoints.shape[1:] == (17, 3)
    assert first.persons.keypoints[0, 0].tolist() == [367, 81, 2]
    image = ds.load_image(0)
    assert image.shape == (ds[0].height, ds[0].width, 3)


def test_detects_crowdpose_files(crowdpose_sample_dir: Path) -> None:
    ds = load_keypoint_dataset(crowdpose_sample_dir / "crowdpose_sample.json")
    assert ds.format == "crowdpose" and ds.preset.name == "crowdpose"
    assert "CrowdPose-format" in ds.describe()
    persons = ds[0].persons
    assert persons.keypoints.shape[1:] == (14, 3)
    # CrowdPose annotations carry no area: the box area stands in for OKS scale.
    assert np.allclose(persons.areas, persons.boxes_xywh[:, 2] * persons.boxes_xywh[:, 3])


def test_reads_a_synthetic_set_with_its_images(tmp_path: Path) -> None:
    json_path = generate_dataset(tmp_path, 3, seed=2, preset="crowdpose", workers=0)
    ds = load_keypoint_dataset(json_path, preset="crowdpose")
    assert ds.image_dir == tmp_path / "images"
    assert ds.format == "crowdpose"
    assert ds.load_image(2).shape == (320, 320, 3)
    from_folder = load_keypoint_dataset(tmp_path, preset="crowdpose")  # the folder synth wrote, as val --data takes it
    assert from_folder.annotations_path == json_path and [r.path for r in from_folder] == [r.path for r in ds]


def test_a_dataset_folder_needs_exactly_one_json(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(InputError, match=r"exactly one COCO keypoints .json \(found: none\)"):
        load_keypoint_dataset(tmp_path)
    (tmp_path / "a.json").write_text("{}")
    (tmp_path / "b.json").write_text("{}")
    with pytest.raises(InputError, match="found: a.json, b.json"):
        load_keypoint_dataset(tmp_path)


def test_crowd_regions_and_grayscale_images(tmp_path: Path, coco_sample_dir: Path) -> None:
    data = json.loads(_coco_json(coco_sample_dir).read_text())
    first = data["images"][0]
    gray = cv2.imread(str(coco_sample_dir / first["file_name"]), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / first["file_name"]), gray)
    for image in data["images"][1:]:
        shutil.copy(coco_sample_dir / image["file_name"], tmp_path)
    data["annotations"].append({
        "id": 999, "image_id": first["id"], "category_id": 1, "iscrowd": 1, "num_keypoints": 0,
        "keypoints": [0] * 51, "bbox": [10, 10, 100, 50], "area": 3000.0,
        "segmentation": {"counts": [0, 5000], "size": [first["height"], first["width"]]},
    })
    (tmp_path / "keypoints.json").write_text(json.dumps(data))
    ds = load_keypoint_dataset(tmp_path / "keypoints.json")
    persons = ds.by_id(first["id"]).persons
    assert persons.iscrowd.tolist().count(True) == 1
    assert persons.num_keypoints[persons.iscrowd].tolist() == [0]
    assert ds.load_image(0).shape == (first["height"], first["width"], 3)


def test_clear_errors(tmp_path: Path, coco_sample_dir: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_keypoint_dataset(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_keypoint_dataset(tmp_path / "broken.json")
    instances = {
        "images": [{"id": 1, "file_name": "a.jpg", "height": 10, "width": 10}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5], "area": 25}],
        "categories": [{"id": 1, "name": "person"}],
    }
    (tmp_path / "instances.json").write_text(json.dumps(instances))
    with pytest.raises(InputError, match="no keypoint annotations"):
        load_keypoint_dataset(tmp_path / "instances.json")
    with pytest.raises(InputError, match="17 keypoints.*'crowdpose' expects 14"):
        load_keypoint_dataset(_coco_json(coco_sample_dir), preset="crowdpose")
