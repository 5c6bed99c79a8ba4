"""``kapao-edge train`` through the CLI on a few tiny synthetic scenes."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from kapao_edge.cli import app
from kapao_edge.data.synth.dataset import generate_dataset
from kapao_edge.model import load_model, read_checkpoint

runner = CliRunner()


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("scenes")
    generate_dataset(root / "train", 4, seed=0, imgsz=128, workers=0)
    generate_dataset(root / "val", 2, seed=1, imgsz=128, workers=0)
    return root


def test_one_epoch_writes_a_loadable_checkpoint(scenes, tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, [
        "train", "--data", str(scenes / "train"), "--val-data", str(scenes / "val"), "--model", "kapao_tiny",
        "--epochs", "1", "--imgsz", "128", "--batch", "2", "--out", str(out), "--seed", "0", "--threads", "2",
    ])
    assert result.exit_code == 0, result.output
    assert "epoch 1/1" in result.output and "best checkpoint" in result.output
    model = load_model(out / "last.pt")
    assert model(torch.rand(1, 3, 128, 128)).shape[-1] == 57
    assert read_checkpoint(out / "best.pt").meta["epoch"] == 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert len(log) == 1 and log[0]["images"] == 4 and "ap" in log[0]


def test_json_and_images_form_and_adamw(scenes, tmp_path):
    result = runner.invoke(app, [
        "train", "--data", str(scenes / "train" / "person_keypoints.json"), "--images", str(scenes / "train" / "images"),
        "--epochs", "1", "--imgsz", "128", "--batch", "4", "--optimizer", "adamw", "--lr", "0.002",
        "--out", str(tmp_path / "run"), "--threads", "2",
    ])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "last.pt").is_file() and not (tmp_path / "run" / "best.pt").exists()
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["optimizer"] == "adamw" and config["lr0"] == 0.002


def test_hyp_overrides_reach_the_run(scenes, tmp_path):
    result = runner.invoke(app, [
        "train", "--data", str(scenes / "train"), "--epochs", "1", "--imgsz", "128", "--batch", "4",
        "--hyp", "scale=0.25", "--hyp", "mosaic=0,kp_bbox=0.06", "--out", str(tmp_path / "run"), "--threads", "2",
        "--time-limit", "30",
    ])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    hyp = config["hyp"]
    assert config["time_limit_min"] == 30.0  # passed through; the one epoch ends well inside it
    assert hyp["scale"] == 0.25 and hyp["mosaic"] == 0.0 and hyp["fliplr"] == 0.5
    assert hyp["kp_bbox"] == 0.06  # repeats and commas alike


@pytest.mark.parametrize(("args", "message"), [
    (["--imgsz", "100"], "multiple of 64"),
    (["--model", "kapao_xxl"], "unknown model"),
    (["--optimizer", "lion"], "unknown optimizer"),
    (["--hyp", "scale"], "--hyp takes KEY=NUMBER"),
    (["--hyp", "scale=big"], "--hyp takes KEY=NUMBER"),
    (["--hyp", "no_such=1"], "unknown hyper-parameter(s): no_such"),
    (["--time-limit", "0"], "time limit must be positive"),
])
def test_bad_options_are_one_line_errors(scenes, tmp_path, args, message):
    result = runner.invoke(app, ["train", "--data", str(scenes / "train"), "--out", str(tmp_path), *args])
    assert result.exit_code == 2
    assert message in result.output and "Traceback" not in result.output


def test_missing_dataset(tmp_path):
    result = runner.invoke(app, ["train", "--data", str(tmp_path / "nowhere")])
    assert result.exit_code == 2 and "dataset not found" in result.output
