"""Synthetic scenes: COCO validity, determinism, visibility flags and left/right geometry."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from kapao_edge.data.synth import Figure, Pose, generate_dataset, generate_scene, render_scene
from kapao_edge.data.synth.body import LimbAngles
from kapao_edge.errors import InputError
from kapao_edge.presets import COCO, CROWDPOSE


def _index(name: str) -> int:
    return COCO.keypoint_names.index(name)


@pytest.mark.parametrize("preset", [COCO, CROWDPOSE], ids=lambda p: p.name)
def test_dataset_is_valid_coco_person_keypoints(tmp_path: Path, preset) -> None:
    from pycocotools.coco import COCO as PyCOCO

    json_path = generate_dataset(tmp_path, 6, seed=11, preset=preset.name, imgsz=(256, 320), workers=0)
    gt = PyCOCO(str(json_path))
    category = gt.loadCats(1)[0]
    assert category["keypoints"] == list(preset.keypoint_names)
    assert all(1 <= i <= preset.num_keypoints for pair in category["skeleton"] for i in pair)
    assert len(gt.getImgIds()) == 6
    assert len(gt.getAnnIds()) > 0
    for image in gt.loadImgs(gt.getImgIds()):
        pixels = cv2.imread(str(tmp_path / "images" / image["file_name"]))
        assert pixels.shape == (256, 320, 3) == (image["height"], image["width"], 3)
    for ann in gt.loadAnns(gt.getAnnIds()):
        kps = np.array(ann["keypoints"], np.float64).reshape(preset.num_keypoints, 3)
        assert ann["num_keypoints"] == int((kps[:, 2] > 0).sum())
        assert set(np.unique(kps[:, 2])) <= {0, 1, 2}
        assert np.all(kps[kps[:, 2] == 0, :2] == 0)  # unlabelled -> (0, 0), as in COCO
        labelled = kps[kps[:, 2] > 0]
        assert np.all((labelled[:, 0] >= 0) & (labelled[:, 0] <= 319))
        assert np.all((labelled[:, 1] >= 0) & (labelled[:, 1] <= 255))
        x, y, w, h = ann["bbox"]
        assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= 320 and y + h <= 256
        assert ann["area"] == pytest.approx(w * h)
        assert ann["iscrowd"] == 0 and ann["category_id"] == 1


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    first = generate_dataset(tmp_path / "a", 10, seed=5, workers=0)
    second = generate_dataset(tmp_path / "b", 10, seed=5, workers=2)
    other = generate_dataset(tmp_path / "c", 10, seed=6, workers=0)
    assert first.read_bytes() == second.read_bytes()
    for image in sorted((tmp_path / "a" / "images").iterdir()):
        assert image.read_bytes() == (tmp_path / "b" / "images" / image.name).read_bytes()
    assert first.read_bytes() != other.read_bytes()
    assert (tmp_path / "a/images/000001.jpg").read_bytes() != (tmp_path / "c/images/000001.jpg").read_bytes()


def test_scene_matches_its_own_annotations_for_crowds() -> None:
    rng = np.random.default_rng(3)
    counts = []
    for _ in range(30):
        scene = generate_scene(rng, "coco", 320)
        counts.append(len(scene.keypoints))
        assert scene.image.shape == (320, 320, 3) and scene.image.dtype == np.uint8
        assert len(scene.boxes_xywh) == len(scene.areas) == len(scene.keypoints)
    assert 1 <= min(counts) and max(counts) >= 4  # single people and small crowds both occur


def test_standing_figure_facing_the_camera_is_fully_visible_with_left_on_the_right() -> None:
    scene = render_scene([Figure(pelvis_xy=(160, 170), height_px=220, yaw_deg=0)], (340, 320), "coco")
    kps = scene.keypoints[0]
    assert np.all(kps[:, 2] == 2)
    for part in ("eye", "ear", "shoulder", "elbow", "wrist", "hip", "knee", "ankle"):
        assert kps[_index(f"left_{part}"), 0] > kps[_index(f"right_{part}"), 0], part


def test_figure_seen_from_behind_has_no_face_and_left_on_the_left() -> None:
    scene = render_scene([Figure(pelvis_xy=(160, 170), height_px=220, yaw_deg=180)], (340, 320), "coco")
    kps = scene.keypoints[0]
    for name in ("nose", "left_eye", "right_eye"):
        assert tuple(kps[_index(name)]) == (0, 0, 0), name
    assert kps[_index("left_ear"), 2] == 2 and kps[_index("right_ear"), 2] == 2
    assert kps[_index("left_shoulder"), 0] < kps[_index("right_shoulder"), 0]
    assert scene.num_keypoints[0] == 14


def test_profile_hides_the_far_eye_and_the_far_arm_behind_the_torso() -> None:
    # Facing the image's right: the person's left side is away from the camera.
    arms_down = Pose(upper_arm=(LimbAngles(0, 0), LimbAngles(0, 0)), forearm=(LimbAngles(0, 0), LimbAngles(0, 0)))
    scene = render_scene([Figure(pelvis_xy=(160, 170), height_px=220, yaw_deg=90, pose=arms_down)], (340, 320))
    kps = scene.keypoints[0]
    assert kps[_index("right_eye"), 2] == 2 and kps[_index("left_eye"), 2] == 0
    assert kps[_index("left_elbow"), 2] == 1  # labelled, covered by the torso and the near arm
    assert kps[_index("right_elbow"), 2] == 2


def test_keypoints_outside_the_frame_are_unlabelled() -> None:
    # Pelvis near the bottom edge: knees and ankles fall below the frame.
    scene = render_scene([Figure(pelvis_xy=(100, 225), height_px=220, yaw_deg=0)], (240, 200), "coco")
    kps = scene.keypoints[0]
    for name in ("left_knee", "right_knee", "left_ankle", "right_ankle"):
        assert tuple(kps[_index(name)]) == (0, 0, 0), name
    assert kps[_index("nose"), 2] == 2 and kps[_index("left_shoulder"), 2] == 2
    assert scene.num_keypoints[0] == 13
    x, y, w, h = scene.boxes_xywh[0]
    assert y + h == 240  # the box is cut by the frame


def test_nearer_figure_covers_keypoints_of_the_one_behind() -> None:
    size = (300, 300)
    back = Figure(pelvis_xy=(150, 150), height_px=240, yaw_deg=0, depth=2.0)
    front = Figure(pelvis_xy=(165, 190), height_px=170, yaw_deg=10, depth=1.0)
    scene = render_scene([back, front], size, "coco")
    assert list(scene.figure_index) == [0, 1]
    back_kps, front_kps = scene.keypoints
    assert np.all(front_kps[:, 2] == 2)

    # Ground truth for "covered": the front figure's silhouette drawn alone.
    alone = render_scene([front], size, "coco")
    covered = alone.labels >= 0  # (H, W)
    labelled = back_kps[:, 2] > 0
    under = np.array([covered[int(round(y)), int(round(x))] for x, y, _ in back_kps])
    assert np.array_equal(back_kps[labelled, 2] == 1, under[labelled])
    assert (back_kps[:, 2] == 1).sum() >= 3 and (back_kps[:, 2] == 2).sum() >= 3

    # Swapping depths brings the big figure forward: now nothing of it is covered.
    swapped = render_scene([replace(back, depth=0.5), front], size, "coco")
    assert np.all(swapped.keypoints[0][:, 2] == 2)


def test_hidden_figure_is_dropped_and_crowdpose_has_head_and_neck() -> None:
    big = Figure(pelvis_xy=(150, 150), height_px=280, yaw_deg=0, depth=0.0)
    tiny_behind = Figure(pelvis_xy=(150, 110), height_px=30, yaw_deg=0, depth=5.0)
    scene = render_scene([big, tiny_behind], (300, 300), "crowdpose")
    assert list(scene.figure_index) == [0]
    kps = scene.keypoints[0]
    head, neck = kps[CROWDPOSE.keypoint_names.index("head")], kps[CROWDPOSE.keypoint_names.index("neck")]
    assert head[2] == 2 and neck[2] > 0 and head[1] < neck[1]


def test_bad_arguments_raise_input_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="at least 1"):
        generate_dataset(tmp_path, 0, seed=1)
    with pytest.raises(InputError, match="unknown preset"):
        generate_dataset(tmp_path, 1, seed=1, preset="mpii")
    with pytest.raises(InputError, match="at least 32x32"):
        generate_scene(np.random.default_rng(0), "coco", (16, 320))


def test_json_has_no_run_dependent_fields(tmp_path: Path) -> None:
    data = json.loads(generate_dataset(tmp_path, 2, seed=9, workers=0).read_text())
    assert data["info"]["seed"] == 9 and data["info"]["preset"] == "coco"
    assert [im["file_name"] for im in data["images"]] == ["000001.jpg", "000002.jpg"]
    assert "date_created" not in data["info"]
