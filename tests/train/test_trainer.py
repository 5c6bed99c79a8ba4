"""A short training run end to end: log, checkpoints, validation, determinism."""

from __future__ import annotations

import json

import pytest
import torch

from kapao_edge.errors import InputError
from kapao_edge.model import load_model, read_checkpoint
from kapao_edge.train.dataset import resolve_split
from kapao_edge.train.trainer import Split, TrainConfig, ema_settings, planned_epochs, train


def run(stick_dataset, out_dir, **changes):
    split = Split(*resolve_split(stick_dataset))
    settings = dict(model="kapao_tiny", epochs=2, imgsz=128, batch_size=3, out_dir=out_dir, seed=0, threads=2)
    config = TrainConfig(**{**settings, **changes})
    lines: list[str] = []
    return train(config, split, split, log=lines.append), lines


def test_short_run_writes_log_and_checkpoints(stick_dataset, tmp_path):
    result, lines = run(stick_dataset, tmp_path / "run")
    history = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in history] == [0, 1] and history == result.history
    for record in history:
        assert {"box", "obj", "cls", "kp", "loss", "lr", "ap", "ap50", "images"} <= set(record)
        assert record["images"] == 6 and record["loss"] > 0 and 0.0 <= record["ap"] <= 100.0
    assert len(lines) == 3 and "epoch 2/2" in lines[-1]

    loaded = read_checkpoint(result.last_checkpoint)
    assert loaded.meta["epoch"] == 1 and loaded.meta["imgsz"] == 128 and loaded.meta["model_name"] == "kapao_tiny"
    assert result.best_checkpoint is not None and result.best_checkpoint.is_file()
    model = load_model(result.last_checkpoint)
    assert model(torch.rand(1, 3, 128, 128)).shape == (1, 3 * (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2), 57)
    config = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert config["preset"] == "coco" and config["warmup_iters"] == 2  # capped at half of 4 iterations


def test_same_seed_same_weights(stick_dataset, tmp_path):
    first, _ = run(stick_dataset, tmp_path / "a", epochs=1)
    second, _ = run(stick_dataset, tmp_path / "b", epochs=1)
    state_a = read_checkpoint(first.last_checkpoint).model.state_dict()
    state_b = read_checkpoint(second.last_checkpoint).model.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert first.history[0]["loss"] == second.history[0]["loss"]


def test_bad_settings_are_user_errors(stick_dataset, tmp_path):
    with pytest.raises(InputError, match="multiple of 64"):
        run(stick_dataset, tmp_path, imgsz=100)
    with pytest.raises(InputError, match="unknown optimizer"):
        run(stick_dataset, tmp_path, optimizer="lion")
    with pytest.raises(InputError, match="time limit must be positive"):
        run(stick_dataset, tmp_path, time_limit_min=0.0)
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="CUDA is not available"):
            run(stick_dataset, tmp_path, device="cuda")


def test_ema_keeps_the_official_settings_for_long_runs_and_shortens_them_for_short_ones():
    assert ema_settings(550_000, None, None) == (0.9999, 2000.0)
    decay, tau = ema_settings(2000, None, None)
    assert decay == pytest.approx(1 - 1 / 100) and tau == pytest.approx(200)
    assert ema_settings(2000, 0.5, 7.0) == (0.5, 7.0)
    with pytest.raises(InputError, match="EMA decay"):
        ema_settings(10, 1.0, None)


def test_training_can_start_from_a_checkpoint(stick_dataset, tmp_path):
    first, _ = run(stick_dataset, tmp_path / "a", epochs=1)
    # lr 1e-12: the starting weights survive the step, so a fine-tune visibly begins where the file ended
    second, _ = run(stick_dataset, tmp_path / "b", epochs=1, weights=first.last_checkpoint, lr0=1e-12)
    start = read_checkpoint(first.last_checkpoint).model.state_dict()
    after = read_checkpoint(second.last_checkpoint).model.state_dict()
    convs = [k for k in start if k.endswith("conv.weight")]
    assert convs and all(torch.allclose(start[k], after[k], atol=1e-6) for k in convs)
    config = json.loads((tmp_path / "b" / "train_config.json").read_text())
    assert config["weights"] == str(first.last_checkpoint)


def test_a_checkpoint_of_another_config_is_refused(stick_dataset, tmp_path):
    from kapao_edge.model import build_model, save_checkpoint

    other = save_checkpoint(build_model("kapao_n"), tmp_path / "n.pt")
    with pytest.raises(InputError, match="holds a kapao_n model, but --model is kapao_tiny"):
        run(stick_dataset, tmp_path / "run", weights=other)
    fused = save_checkpoint(build_model("kapao_tiny").fuse(), tmp_path / "fused.pt")
    with pytest.raises(InputError, match="fused"):
        run(stick_dataset, tmp_path / "run", weights=fused)


def test_time_limit_replans_epochs_from_the_pace_so_far():
    assert planned_epochs(1, 30.0, 300.0, most=100) == 10  # 30 s an epoch, 5 minutes
    assert planned_epochs(4, 100.0, 300.0, most=100) == 12
    assert planned_epochs(2, 100.0, 60.0, most=100) == 2  # already over: stop after the epochs done
    assert planned_epochs(1, 1.0, 300.0, most=7) == 7  # --epochs stays the most


def test_a_run_with_a_spent_time_limit_stops_after_its_first_epoch(stick_dataset, tmp_path):
    result, lines = run(stick_dataset, tmp_path / "run", epochs=5, time_limit_min=1e-6)
    assert [r["epoch"] for r in result.history] == [0] and result.history[0]["planned_epochs"] == 1
    assert "ap" in result.history[0] and "epoch 1/1" in lines[-1]  # the last epoch is validated
