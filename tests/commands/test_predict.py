"""`kapao-edge predict` end to end on real images, with real checkpoints."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from kapao_edge.cli import app

runner = CliRunner()


def _invoke(*args: str):
    return runner.invoke(app, ["predict", *map(str, args)])


def test_predict_folder_writes_drawn_images_and_loadable_coco_results(
    tmp_path: Path, coco_sample_dir: Path, posing_checkpoint: Path
):
    from pycocotools.coco import COCO

    out = tmp_path / "out"
    result = _invoke(coco_sample_dir, "--weights", posing_checkpoint, "--out", out, "--imgsz", "320")
    assert result.exit_code == 0, result.output
    images = sorted(p.name for p in coco_sample_dir.glob("*.jpg"))
    assert sorted(p.name for p in out.glob("*.jpg")) == images
    for name in images:  # drawn images keep the original size
        assert cv2.imread(str(out / name)).shape == cv2.imread(str(coco_sample_dir / name)).shape

    results = json.loads((out / "results.json").read_text())
    assert results, "the biased checkpoint must produce poses"
    assert {r["category_id"] for r in results} == {1}
    assert all(len(r["keypoints"]) == 17 * 3 for r in results)
    gt = COCO(str(coco_sample_dir / "person_keypoints_sample.json"))
    detections = gt.loadRes(str(out / "results.json"))  # ids must be the COCO image ids
    assert set(detections.getImgIds()) <= set(gt.getImgIds())
    assert len(detections.getAnnIds()) == len(results)


def test_predict_video_writes_a_video_and_frame_indexed_results(tmp_path: Path, posing_checkpoint: Path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (192, 128))
    rng = np.random.default_rng(0)
    for _ in range(3):
        writer.write(rng.integers(0, 255, (128, 192, 3), dtype=np.uint8))
    writer.release()
    out = tmp_path / "out"
    result = _invoke(video, "--weights", posing_checkpoint, "--out", out, "--imgsz", "192")
    assert result.exit_code == 0, result.output
    capture = cv2.VideoCapture(str(out / "clip.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
    results = json.loads((out / "results.json").read_text())
    assert {r["image_id"] for r in results} <= {0, 1, 2}
    assert not list(out.glob(".*tmp*")), "no temporary file may be left behind"


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.jpg", "--weights", "{weights}"], "does not exist"),
        (["{image}", "--weights", "{weights}", "--engine", "{weights}"], "exactly one of --weights"),
        (["{image}", "--weights", "{weights}", "--imgsz", "300"], "multiple of 64"),
        (["{image}", "--weights", "{weights}", "--thresholds", "fast"], "--thresholds"),
        (["{image}", "--weights", "{weights}", "--conf-thres", "1.5"], "conf_thres"),
    ],
)
def test_predict_bad_input_exits_non_zero_with_a_clear_message(
    tmp_path: Path, coco_sample_dir: Path, posing_checkpoint: Path, args: list[str], message: str
):
    image = next(coco_sample_dir.glob("*.jpg"))
    filled = [a.format(weights=posing_checkpoint, image=image) for a in args]
    result = _invoke(*filled, "--out", tmp_path / "out")
    assert result.exit_code != 0
    assert message in result.output
    assert not (tmp_path / "out" / "results.json").exists()


def test_predict_refuses_a_non_kapao_checkpoint(tmp_path: Path, coco_sample_dir: Path):
    import torch

    bogus = tmp_path / "resnet.pt"
    torch.save({"conv1.weight": torch.zeros(8, 3, 3, 3)}, bogus)
    result = _invoke(coco_sample_dir, "--weights", bogus, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "error" in result.output.lower()


def test_predict_with_an_onnx_engine_gives_the_same_poses_as_the_checkpoint(
    tmp_path: Path, coco_sample_dir: Path, posing_checkpoint: Path, onnx_export
):
    onnx_path = onnx_export(posing_checkpoint)  # dynamic batch and H/W, metadata inside
    runs = {}
    for flag, model in (("--weights", posing_checkpoint), ("--engine", onnx_path)):
        out = tmp_path / flag.strip("-")
        result = _invoke(coco_sample_dir, flag, model, "--out", out, "--imgsz", "320", "--no-save-images")
        assert result.exit_code == 0, result.output
        runs[flag] = json.loads((out / "results.json").read_text())
    reference, engine = runs["--weights"], runs["--engine"]
    assert reference and len(engine) == len(reference)
    for ref, got in zip(reference, engine):
        assert got["image_id"] == ref["image_id"]
        np.testing.assert_allclose(got["keypoints"], ref["keypoints"], atol=0.05)
        assert abs(got["score"] - ref["score"]) < 1e-3


# --- streams: every source, JSON lines, run folders, bad frames, signals -------------------------


def _write_video(path: Path, frames: int, fps: float = 10.0, hw=(128, 192)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (hw[1], hw[0]))
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (*hw, 3), dtype=np.uint8)  # (H, W, 3)
    for index in range(frames):
        writer.write(np.roll(base, 3 * index, axis=1))
    writer.release()
    return path


def _count_frames_by_reading(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def _json_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_predict_video_writes_one_json_line_per_frame_matching_the_video(tmp_path: Path, posing_checkpoint: Path):
    video = _write_video(tmp_path / "walk.avi", 6, fps=12.0)
    out = tmp_path / "out"
    result = _invoke(video, "--weights", posing_checkpoint, "--out", out, "--imgsz", "192")
    assert result.exit_code == 0, result.output
    assert "FPS" in result.output and "p50 ms" in result.output
    lines = _json_lines(out / "walk.jsonl")
    assert [line["frame"] for line in lines] == list(range(6))
    assert [line["dropped"] for line in lines] == [0] * 6
    np.testing.assert_allclose([line["timestamp"] for line in lines], np.arange(6) / 12.0, atol=1e-6)
    assert all(line["poses"] for line in lines), "the biased checkpoint finds poses on every frame"
    pose = lines[0]["poses"][0]
    assert len(pose["keypoints"]) == 17 and len(pose["box"]) == 4 and 0 < pose["score"] <= 1
    assert "id" not in pose, "ids only with --track"
    assert _count_frames_by_reading(out / "walk.mp4") == 6
    capture = cv2.VideoCapture(str(out / "walk.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(12.0, abs=0.01), "the source fps is kept"
    capture.release()
    coco = json.loads((out / "results.json").read_text())
    assert sum(len(line["poses"]) for line in lines) == len(coco)
    assert all(len(r["bbox"]) == 4 for r in coco)


def test_predict_makes_a_new_run_folder_per_run_unless_exist_ok(tmp_path: Path, coco_sample_dir: Path,
                                                                 posing_checkpoint: Path):
    image = sorted(coco_sample_dir.glob("*.jpg"))[0]
    out = tmp_path / "runs" / "predict"
    for _ in range(2):
        result = _invoke(image, "--weights", posing_checkpoint, "--out", out, "--imgsz", "320")
        assert result.exit_code == 0, result.output
    assert (out / image.name).is_file() and (out.with_name("predict2") / image.name).is_file()
    result = _invoke(image, "--weights", posing_checkpoint, "--out", out, "--imgsz", "320", "--exist-ok")
    assert result.exit_code == 0, result.output
    assert not out.with_name("predict3").exists()
    line = _json_lines(out / f"{image.stem}.jsonl")[0]
    assert line["image"] == image.name and line["timestamp"] is None


def test_predict_skips_bad_images_with_a_warning_unless_strict(tmp_path: Path, coco_sample_dir: Path,
                                                               posing_checkpoint: Path):
    folder = tmp_path / "images"
    folder.mkdir()
    good = sorted(coco_sample_dir.glob("*.jpg"))[:2]
    for path in good:
        (folder / path.name).write_bytes(path.read_bytes())
    data = good[0].read_bytes()
    (folder / "zz_truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "zz_garbage.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "out"
    result = _invoke(folder, "--weights", posing_checkpoint, "--out", out, "--imgsz", "320")
    assert result.exit_code == 0, result.output
    assert "truncated" in result.output and "zz_garbage.jpg" in result.output
    assert "2 skipped" in result.output
    assert sorted(p.name for p in out.glob("*.jpg")) == sorted(p.name for p in good)
    assert [line["image"] for line in _json_lines(out / "images.jsonl")] == sorted(p.name for p in good)

    strict = _invoke(folder, "--weights", posing_checkpoint, "--out", tmp_path / "strict", "--imgsz", "320", "--strict")
    assert strict.exit_code == 2
    assert "zz_garbage.jpg" in strict.output or "truncated" in strict.output


def test_predict_glob_source(tmp_path: Path, coco_sample_dir: Path, posing_checkpoint: Path):
    out = tmp_path / "out"
    result = _invoke(str(coco_sample_dir / "*.jpg"), "--weights", posing_checkpoint, "--out", out, "--imgsz", "320",
                     "--no-save-images")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in coco_sample_dir.glob("*.jpg"))
    assert [line["image"] for line in _json_lines(next(out.glob("*.jsonl")))] == names


def test_predict_refuses_an_output_folder_under_a_file_before_any_work(tmp_path: Path, coco_sample_dir: Path):
    blocker = tmp_path / "taken"
    blocker.write_text("a file")
    result = _invoke(coco_sample_dir, "--weights", "no-such-model", "--out", blocker / "run")
    assert result.exit_code == 2
    assert "taken" in result.output and "file" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_predict_track_gives_ids_or_says_the_tracker_is_missing(tmp_path: Path, posing_checkpoint: Path):
    import importlib.util

    video = _write_video(tmp_path / "walk.avi", 4)
    out = tmp_path / "out"
    result = _invoke(video, "--weights", posing_checkpoint, "--out", out, "--imgsz", "192", "--track")
    if importlib.util.find_spec("kapao_edge.runtime.tracker") is None:
        assert result.exit_code == 2 and "--track needs" in result.output
        return
    assert result.exit_code == 0, result.output
    lines = _json_lines(out / "walk.jsonl")
    assert all("id" in pose for line in lines for pose in line["poses"])
    confirmed = [[p["id"] for p in line["poses"] if p["id"] is not None] for line in lines]
    assert all(len(set(ids)) == len(ids) for ids in confirmed)  # one person, one id per frame
    assert any(confirmed[1:])  # people are confirmed after their second frame


def _cli(*args: str, **kwargs):
    import subprocess
    import sys

    code = "from kapao_edge.cli import main; main()"
    return subprocess.Popen([sys.executable, "-c", code, "predict", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


@pytest.mark.parametrize("source", ["97", "http://127.0.0.1:{port}/live.mjpg"])
def test_a_missing_camera_or_unreachable_url_is_one_line_and_exit_2(tmp_path: Path, source: str):
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = _cli(source.format(port=port), "--weights", "bundled", "--out", tmp_path / "out")
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 2, stdout + stderr
    lines = [line for line in (stdout + stderr).splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot open"), lines
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("signame, code", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signal_during_a_video_run_leaves_a_playable_video_and_valid_json_lines(
    tmp_path: Path, posing_checkpoint: Path, signame: str, code: int
):
    import signal

    video = _write_video(tmp_path / "long.avi", 400)
    out = tmp_path / "out"
    process = _cli(video, "--weights", posing_checkpoint, "--out", out, "--imgsz", "192")
    jsonl = out / "long.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 5:
                break
            time.sleep(0.02)
        assert process.poll() is None, "the run ended before it could be interrupted"
        process.send_signal(getattr(signal, signame))
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == code, stdout + stderr
    import re

    said = re.search(rf"stopped by {signame} after (\d+) frame", stderr)
    assert said, stderr
    lines = _json_lines(jsonl)  # every line parses
    assert 5 <= len(lines) < 400 and len(lines) == int(said.group(1))
    assert [line["frame"] for line in lines] == list(range(len(lines)))
    assert _count_frames_by_reading(out / "long.mp4") == len(lines), "the video holds every frame it reports"
    assert sorted(p.name for p in out.iterdir()) == ["long.jsonl", "long.mp4", "results.json"]
    assert len(json.loads((out / "results.json").read_text())) == sum(len(line["poses"]) for line in lines)


def test_a_live_source_that_gives_up_keeps_the_outputs_of_the_frames_before(tmp_path: Path, posing_checkpoint: Path):
    """A video played as a live source ends like an unplugged camera: retried, then reported once."""
    from kapao_edge.commands.predict import _StopOnSignal, make_pipeline, run_predict
    from kapao_edge.data import open_source
    from kapao_edge.engines import load_engine

    video = _write_video(tmp_path / "cam.avi", 5)
    with load_engine(posing_checkpoint, backend="torch") as engine:
        pipeline = make_pipeline(engine, imgsz=192, config=None, postprocess_backend="auto")
        with open_source(video, live=True, retries=1, retry_delay=0.0) as frames:
            video.unlink()  # the device is gone once its buffered frames are read
            summary = run_predict(pipeline, frames, tmp_path / "out", save_images=True, save_json=True,
                                  save_jsonl=True, show=False, stopper=_StopOnSignal())
    assert "stopped delivering frames" in summary["source_error"] and "gave up after 1 retry" in summary["source_error"]
    lines = _json_lines(tmp_path / "out" / "cam.jsonl")
    assert 1 <= len(lines) == summary["frames"] <= 5
    assert lines[-1]["frame"] == 4 and lines[-1]["frame"] - (len(lines) - 1) == lines[-1]["dropped"]
    assert _count_frames_by_reading(tmp_path / "out" / "cam.mp4") == len(lines)
    assert (tmp_path / "out" / "results.json").is_file()


def test_the_documented_interface_with_the_bundled_model(tmp_path: Path, synth_set: Path):
    """`kapao-edge predict VIDEO --weights bundled --out DIR`: an annotated mp4 and a .jsonl under DIR,
    one object per frame with its poses (keypoints, box, score), at the model's documented 448 px."""
    from kapao_edge.commands._common import model_imgsz

    assert model_imgsz("bundled") == 448
    video = tmp_path / "scenes.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 8.0, (320, 240))
    for image in sorted((synth_set / "images").iterdir())[:4]:
        writer.write(cv2.resize(cv2.imread(str(image)), (320, 240)))
    writer.release()
    out = tmp_path / "dir"
    result = _invoke(video, "--weights", "bundled", "--out", out)
    assert result.exit_code == 0, result.output
    (mp4,), (jsonl,) = list(out.glob("*.mp4")), list(out.glob("*.jsonl"))
    lines = _json_lines(jsonl)
    assert len(lines) == 4 == _count_frames_by_reading(mp4)
    poses = [pose for line in lines for pose in line["poses"]]
    assert poses, "the bundled model finds the people in its kind of scenes"
    assert all(set(pose) == {"keypoints", "box", "score"} for pose in poses)


def test_show_without_a_display_warns_once_and_runs(tmp_path: Path, posing_checkpoint: Path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    video = _write_video(tmp_path / "walk.avi", 3)
    result = _invoke(video, "--weights", posing_checkpoint, "--out", tmp_path / "out", "--imgsz", "192", "--show")
    assert result.exit_code == 0, result.output
    assert result.output.count("no display") == 1
    assert len(_json_lines(tmp_path / "out" / "walk.jsonl")) == 3


def test_predict_without_a_model_option_uses_the_bundled_model(tmp_path: Path, coco_sample_dir: Path):
    """A first run needs no model option, as in Ultralytics; the choice is said on stderr."""
    image = next(coco_sample_dir.glob("*.jpg"))
    result = _invoke(str(image), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "using the bundled model" in result.stderr
    assert json.loads((tmp_path / "out" / "results.json").read_text()) is not None
