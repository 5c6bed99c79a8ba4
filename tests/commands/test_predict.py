"""`kapao-edge predict` end to end on real images, with real checkpoints."""

from __future__ import annotations

import json
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
        (["{image}"], "exactly one of --weights"),
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
