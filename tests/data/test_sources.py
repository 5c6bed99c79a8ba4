from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kapao_edge.data import count_frames, iter_frames, read_image, source_kind
from kapao_edge.errors import InputError


def _write(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    _write(folder / "b.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    _write(folder / "a.PNG", rng.integers(0, 256, (24, 16, 3), dtype=np.uint8))
    _write(folder / "c_grey.png", rng.integers(0, 256, (10, 12), dtype=np.uint8))
    _write(folder / "d_alpha.png", rng.integers(0, 256, (8, 9, 4), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture()
def video_file(tmp_path: Path) -> Path:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for value in (0, 60, 120, 180, 240):
        writer.write(np.full((48, 64, 3), value, np.uint8))
    writer.release()
    return path


def test_folder_yields_sorted_images_as_three_channel_bgr(image_folder: Path):
    frames = list(iter_frames(image_folder))
    assert [f.name for f in frames] == ["a.PNG", "b.png", "c_grey.png", "d_alpha.png"]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [f.image_bgr.shape for f in frames] == [(24, 16, 3), (20, 30, 3), (10, 12, 3), (8, 9, 3)]
    assert all(f.image_bgr.dtype == np.uint8 for f in frames)
    np.testing.assert_array_equal(frames[1].image_bgr, cv2.imread(str(image_folder / "b.png")))
    grey = cv2.imread(str(image_folder / "c_grey.png"), cv2.IMREAD_UNCHANGED)
    for channel in range(3):
        np.testing.assert_array_equal(frames[2].image_bgr[..., channel], grey)
    alpha = cv2.imread(str(image_folder / "d_alpha.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(frames[3].image_bgr, alpha[..., :3])
    assert count_frames(image_folder) == 4


def test_single_image(image_folder: Path):
    path = image_folder / "b.png"
    frames = list(iter_frames(path))
    assert len(frames) == 1 and frames[0].path == path and frames[0].name == "b.png"
    assert source_kind(path) == "image" and count_frames(path) == 1


def test_video_frames_in_order(video_file: Path):
    assert source_kind(video_file) == "video"
    assert count_frames(video_file) == 5
    frames = list(iter_frames(video_file))
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert frames[3].name == "clip_000003"
    assert all(f.image_bgr.shape == (48, 64, 3) for f in frames)
    means = [float(f.image_bgr.mean()) for f in frames]
    assert means == sorted(means) and abs(means[2] - 120) < 5  # MJPG is lossy but keeps flat greys


def test_missing_path_is_reported_at_call_time(tmp_path: Path):
    with pytest.raises(InputError, match="does not exist"):
        iter_frames(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="does not exist"):
        count_frames(tmp_path / "nope")


def test_unsupported_extension(tmp_path: Path):
    path = tmp_path / "labels.txt"
    path.write_text("1 2 3")
    with pytest.raises(InputError, match="unsupported extension '.txt'"):
        iter_frames(path)


def test_empty_folder_and_folder_without_images(tmp_path: Path):
    with pytest.raises(InputError, match="no images"):
        iter_frames(tmp_path)
    (tmp_path / "readme.md").write_text("hello")
    with pytest.raises(InputError, match="no images"):
        count_frames(tmp_path)


def test_unreadable_image_and_video(tmp_path: Path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 definitely not a jpeg")
    with pytest.raises(InputError, match="cannot decode"):
        read_image(broken)
    frames = iter_frames(broken)  # the path itself is fine: the failure comes with the frame
    with pytest.raises(InputError, match="cannot decode"):
        next(frames)
    fake_video = tmp_path / "fake.avi"
    fake_video.write_bytes(b"RIFF nonsense")
    with pytest.raises(InputError, match="video"):
        iter_frames(fake_video)


def test_real_coco_samples(coco_sample_dir: Path):
    annotations = json.loads((coco_sample_dir / "person_keypoints_sample.json").read_text())
    expected = sorted((im["file_name"], im["height"], im["width"]) for im in annotations["images"])
    frames = list(iter_frames(coco_sample_dir))
    assert [(f.name, *f.image_bgr.shape[:2]) for f in frames] == expected
    assert count_frames(coco_sample_dir) == len(expected)
