"""Output writers: playable videos on every exit path, complete JSON lines, COCO results, run folders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from kapao_edge import outputs
from kapao_edge.errors import InputError
from kapao_edge.postprocess import Poses


def _read_all(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, image = capture.read()
        if not ok:
            break
        frames.append(image)
    capture.release()
    return frames


def _grey(value: int, hw=(48, 64)) -> np.ndarray:
    return np.full((*hw, 3), value, np.uint8)  # (H, W, 3)


def test_video_writer_renames_on_close_and_keeps_the_fps(tmp_path: Path):
    target = tmp_path / "clip.mp4"
    with outputs.VideoWriter(target, fps=12.5) as video:
        for value in (0, 80, 160, 240):
            video.write(_grey(value))
        assert not target.exists(), "the video appears only when it is complete"
    assert video.frames == 4
    frames = _read_all(target)
    assert len(frames) == 4 and frames[0].shape == (48, 64, 3)
    means = [float(f.mean()) for f in frames]
    assert means == sorted(means) and abs(means[2] - 160) < 8
    capture = cv2.VideoCapture(str(target))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.5, abs=0.01)
    capture.release()
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"], "no temporary file may be left behind"


def test_video_writer_finalizes_what_was_written_when_the_run_fails(tmp_path: Path):
    target = tmp_path / "clip.mp4"
    with pytest.raises(KeyboardInterrupt):
        with outputs.VideoWriter(target, fps=10) as video:
            for value in (10, 20, 30):
                video.write(_grey(value))
            raise KeyboardInterrupt
    assert len(_read_all(target)) == 3


def test_video_writer_without_frames_leaves_nothing_and_resizes_odd_frames(tmp_path: Path):
    with outputs.VideoWriter(tmp_path / "empty.mp4") as video:
        pass
    assert video.close() is None and not list(tmp_path.iterdir())
    with outputs.VideoWriter(tmp_path / "mixed.mp4") as video:
        video.write(_grey(50))
        video.write(_grey(50, hw=(30, 40)))  # another size is fitted to the first
    frames = _read_all(tmp_path / "mixed.mp4")
    assert [f.shape for f in frames] == [(48, 64, 3), (48, 64, 3)]


def _poses(count: int, ids=None) -> Poses:
    rng = np.random.default_rng(count)
    keypoints = rng.uniform(0, 100, (count, 17, 3)).astype(np.float32)  # (P, K, 3)
    boxes = np.tile(np.array([[10, 20, 50, 100]], np.float32), (count, 1))  # (P, 4)
    poses = Poses(keypoints=keypoints, boxes=boxes, scores=np.linspace(0.9, 0.5, count, dtype=np.float32))
    if ids is not None:
        object.__setattr__(poses, "ids", np.asarray(ids, np.int64))
    return poses


class _Result:
    def __init__(self, poses, index, dropped=0, timestamp=None):
        self.poses, self.frame_index, self.dropped, self.timestamp = poses, index, dropped, timestamp


def test_json_lines_hold_one_complete_record_per_frame(tmp_path: Path):
    target = tmp_path / "run.jsonl"
    with outputs.JsonLinesWriter(target) as jsonl:
        jsonl.write(outputs.frame_record(_Result(_poses(2, ids=[7, 3]), 0, timestamp=0.0)))
        assert len(target.read_text().splitlines()) == 1, "each line is flushed as it is written"
        jsonl.write(outputs.frame_record(_Result(_poses(0), 5, dropped=4, timestamp=0.5), image="b.jpg"))
    first, second = (json.loads(line) for line in target.read_text().splitlines())
    assert (first["frame"], first["dropped"], first["timestamp"]) == (0, 0, 0.0)
    assert [p["id"] for p in first["poses"]] == [7, 3]
    pose = first["poses"][0]
    assert len(pose["keypoints"]) == 17 and len(pose["keypoints"][0]) == 3
    assert pose["box"] == [10.0, 20.0, 50.0, 100.0] and pose["score"] == pytest.approx(0.9)
    assert second == {"frame": 5, "timestamp": 0.5, "dropped": 4, "image": "b.jpg", "poses": []}
    untracked = outputs.pose_records(_poses(1))
    assert "id" not in untracked[0]


def test_coco_results_carry_boxes_as_xywh_and_load_in_pycocotools(tmp_path: Path):
    from pycocotools.coco import COCO

    results = outputs.coco_results(_poses(2), image_id=785)
    assert results[0]["bbox"] == [10.0, 20.0, 40.0, 80.0]
    assert len(results[0]["keypoints"]) == 51 and results[0]["category_id"] == 1
    path = outputs.write_coco_results(tmp_path / "results.json", results)
    gt = COCO()
    gt.dataset = {"images": [{"id": 785, "width": 200, "height": 200}], "annotations": [],
                  "categories": [{"id": 1, "name": "person"}]}
    gt.createIndex()
    assert len(gt.loadRes(str(path)).getAnnIds()) == 2
    assert outputs.image_id_for("000000000785.jpg", 3) == 785 and outputs.image_id_for("a.jpg", 3) == 3


def test_run_folders_count_up_unless_exist_ok(tmp_path: Path):
    base = tmp_path / "runs" / "predict"
    assert outputs.choose_run_dir(base) == base
    base.mkdir(parents=True)
    assert outputs.choose_run_dir(base) == base, "an empty folder holds no earlier run"
    (base / "clip.jsonl").write_text("{}\n")
    assert outputs.choose_run_dir(base) == tmp_path / "runs" / "predict2"
    (tmp_path / "runs" / "predict2").mkdir()
    (tmp_path / "runs" / "predict2" / "x.mp4").write_bytes(b"x")
    assert outputs.choose_run_dir(base) == tmp_path / "runs" / "predict3"
    assert outputs.choose_run_dir(base, exist_ok=True) == base


def test_output_folder_under_a_file_is_refused_without_creating_anything(tmp_path: Path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(InputError, match="which is a file"):
        outputs.check_output_dir(blocker / "a" / "b")
    with pytest.raises(InputError, match="is a file"):
        outputs.check_output_dir(blocker)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
    assert outputs.check_output_dir(tmp_path / "new" / "run") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()


def test_an_unwritable_output_folder_is_refused(tmp_path: Path):
    """A read-only folder (for users) or /proc (for root too, which no permission bit stops)."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for folder in (locked, Path("/proc/self")):
            try:
                (folder / ".probe").open("x").close()
            except OSError:
                break  # the file system refuses this one
            (folder / ".probe").unlink()
        else:
            pytest.skip("no folder here refuses new files to this user")
        with pytest.raises(InputError, match="not writable"):
            outputs.check_output_dir(folder / "run")
    finally:
        locked.chmod(0o755)
    assert not (folder / "run").exists()


def test_the_writability_probe_leaves_nothing_behind(tmp_path: Path):
    from kapao_edge.utils.io import can_create_in

    assert can_create_in(tmp_path) and list(tmp_path.iterdir()) == []
    assert not can_create_in(tmp_path / "absent")


def test_a_paced_video_takes_its_fps_from_the_timestamps_of_what_was_kept(tmp_path: Path):
    """A live source at 30 fps whose every third frame was kept plays back at 10 fps, in real time."""
    target = tmp_path / "camera0.mp4"
    with outputs.VideoWriter(target, fps=30.0, pace_frames=4) as video:
        for index in range(6):
            video.write(_grey(40 * index), timestamp=100.0 + index * 0.1)
    capture = cv2.VideoCapture(str(target))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0, abs=0.01)
    capture.release()
    assert len(_read_all(target)) == 6
    with outputs.VideoWriter(tmp_path / "short.mp4", fps=30.0, pace_frames=10) as video:
        for index in range(3):  # fewer frames than the pace window: they are written at close
            video.write(_grey(50), timestamp=index * 0.5)
    assert len(_read_all(tmp_path / "short.mp4")) == 3
