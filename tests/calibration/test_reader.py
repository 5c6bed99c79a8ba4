"""Calibration images: sources, seeded sampling, batching to the ONNX input, and bad inputs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from kapao_edge.calibration.reader import CalibrationImages, InputSpec, collect_image_paths, fingerprint, sample_paths
from kapao_edge.errors import InputError


def test_folder_json_and_list_sources_name_the_same_images(synth_set: Path, tmp_path: Path):
    from_folder = collect_image_paths(synth_set / "images")
    from_json = collect_image_paths(synth_set / "person_keypoints.json")
    listing = tmp_path / "calib.txt"
    listing.write_text("# calibration list\n" + "\n".join(str(p) for p in from_folder[:3]) + "\n\n")
    assert sorted(from_json) == sorted(from_folder)
    assert collect_image_paths(listing) == from_folder[:3]
    assert collect_image_paths(synth_set) == from_folder  # the dataset folder synth writes: its images/


def test_sampling_is_seeded_and_held_out_images_are_disjoint(synth_set: Path):
    paths = collect_image_paths(synth_set / "images")
    first, rest = sample_paths(paths, 5, seed=3)
    again, _ = sample_paths(paths, 5, seed=3)
    other, _ = sample_paths(paths, 5, seed=4)
    assert first == again and len(first) == 5
    assert first != other
    assert not set(first) & set(rest) and len(first) + len(rest) == len(paths)


def test_batches_follow_a_fixed_input_shape(tiny_onnx_fixed: Path, synth_set: Path):
    spec = InputSpec.from_onnx(tiny_onnx_fixed)
    assert (spec.batch, spec.height, spec.width, spec.imgsz) == (1, 256, 320, 320)
    images = CalibrationImages(synth_set / "images", spec, count=3, seed=0)
    batches = list(images.batches())
    assert [b.shape for b in batches] == [(1, 3, 256, 320)] * 3
    assert all(b.dtype == np.float32 and 0.0 <= b.min() and b.max() <= 1.0 for b in batches)


def test_dynamic_input_uses_imgsz_and_fills_the_last_batch(tiny_onnx: Path, synth_set: Path):
    spec = InputSpec.from_onnx(tiny_onnx, imgsz=192)
    spec = InputSpec(spec.name, 2, spec.height, spec.width, spec.imgsz)  # as if the batch were fixed at 2
    images = CalibrationImages(synth_set / "images", spec, count=3, seed=0)
    feeds = list(images)
    assert len(feeds) == len(images) == 2
    assert all(feed["images"].shape == (2, 3, 192, 192) for feed in feeds)
    assert images.images_read == 3


def test_unreadable_images_are_skipped_and_counted(image_copy, tiny_onnx: Path):
    folder = image_copy(6)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    images = CalibrationImages(folder, InputSpec.from_onnx(tiny_onnx, 128), count=7, seed=0)
    assert len(list(images.batches())) == 6
    assert images.skipped == ["broken.jpg"]


def test_too_few_readable_images_is_an_error(tmp_path: Path, tiny_onnx: Path):
    for index in range(3):
        (tmp_path / f"bad{index}.png").write_bytes(b"\x00" * 10)
    images = CalibrationImages(tmp_path, InputSpec.from_onnx(tiny_onnx, 128), count=3, seed=0)
    with pytest.raises(InputError, match="only 0 of 3 calibration images could be decoded"):
        list(images.batches())


def test_empty_folder_and_annotations_without_images_or_keypoints_are_refused(tmp_path: Path, synth_set: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        collect_image_paths(empty)
    data = json.loads((synth_set / "person_keypoints.json").read_text())
    no_images = tmp_path / "no_images.json"
    no_images.write_text(json.dumps({**data, "images": [], "annotations": []}))
    with pytest.raises(InputError, match="lists no images"):
        collect_image_paths(no_images)
    detection_only = tmp_path / "instances.json"
    categories = [{"id": 1, "name": "person"}]
    annotations = [{k: v for k, v in a.items() if k != "keypoints"} for a in data["annotations"]]
    detection_only.write_text(json.dumps({**data, "categories": categories, "annotations": annotations}))
    with pytest.raises(InputError, match="no keypoint annotations"):
        collect_image_paths(detection_only)
    with pytest.raises(InputError, match="does not exist"):
        collect_image_paths(tmp_path / "missing")


def test_fingerprint_changes_with_the_image_set(image_copy):
    folder = image_copy(3)
    paths = sorted(folder.iterdir())
    before = fingerprint(paths)
    assert fingerprint(sorted(folder.iterdir())) == before
    stat = paths[0].stat()
    os.utime(paths[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert fingerprint(paths) != before
    assert fingerprint(paths[:2]) != fingerprint(paths)
