"""The training loop: warm-up then cosine learning rate, gradient accumulation to a nominal batch,
EMA weights, AMP on CUDA, a JSON-lines log, and checkpoints of the EMA model (last and best by AP).
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from kapao_edge.errors import InputError
from kapao_edge.presets import preset_for_keypoints
from kapao_edge.train.dataset import KapaoDataset, make_loader
from kapao_edge.train.hyp import ADAMW_LR0, Hyp, LossGains
from kapao_edge.train.labels import ImageAnnotations, read_coco_keypoints
from kapao_edge.train.loss import LOSS_NAMES, KapaoLoss
from kapao_edge.train.optim import (
    BIAS_GROUP,
    OPTIMIZERS,
    ModelEMA,
    cosine_factor,
    interpolate,
    make_optimizer,
)
from kapao_edge.utils.io import write_text_atomic

LOG_NAME = "train_log.jsonl"
OFFICIAL_EMA_DECAY = 0.9999
OFFICIAL_EMA_TAU = 2000.0


@dataclass
class TrainConfig:
    model: str = "kapao_tiny"
    epochs: int = 10
    imgsz: int = 256
    batch_size: int = 16
    optimizer: str = "sgd"
    lr0: float | None = None  # None: hyp.lr0 for SGD, ADAMW_LR0 for AdamW
    device: str = "cpu"
    out_dir: Path = Path("runs/train")
    seed: int = 0
    workers: int = 0
    val_interval: int = 1  # validate every N epochs (and after the last)
    nominal_batch_size: int = 64  # gradients accumulate to about this many images per step
    min_warmup_iters: int = 100  # the official uses 1000, too many for short CPU runs
    ema_decay: float | None = None  # None: the official 0.9999, shortened for short runs (see ema_settings)
    ema_tau: float | None = None  # EMA decay ramp in optimiser steps; None: official 2000, shortened alike
    cache_images: bool = False
    threads: int | None = None  # torch CPU threads; None leaves torch's default
    weights: Path | None = None  # start from this checkpoint (same config and keypoints) instead of scratch
    time_limit_min: float | None = None  # train about this long: epochs re-planned each epoch, `epochs` the most
    hyp: Hyp = field(default_factory=Hyp)

    def check(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.workers < 0 or self.val_interval < 1:
            raise InputError("epochs, batch size and val interval must be >= 1, workers >= 0")
        if self.imgsz < 64 or self.imgsz % 64:
            raise InputError(f"imgsz must be a positive multiple of 64 (the largest stride), got {self.imgsz}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError(f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.lr0 is not None and not self.lr0 > 0:
            raise InputError(f"lr0 must be positive, got {self.lr0}")
        if self.time_limit_min is not None and not self.time_limit_min > 0:
            raise InputError(f"the time limit must be positive minutes, got {self.time_limit_min}")


@dataclass
class Split:
    """A COCO person-keypoints annotation file and the folder its image file names refer to."""

    annotation_file: Path
    images_dir: Path


@dataclass
class TrainResult:
    last_checkpoint: Path
    best_checkpoint: Path | None
    best_ap: float | None
    history: list[dict]


def select_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}; use cpu, cuda or cuda:N") from None


def ema_settings(optimizer_steps: int, decay: float | None, tau: float | None) -> tuple[float, float]:
    """EMA decay and ramp for a run of ``optimizer_steps``.

    The official 0.9999 averages over ~10k steps and ramps over 2k: right for 300 COCO epochs, but in a
    run of a few thousand steps the average would still be dominated by the first, untrained weights.
    Unless given, the averaging horizon is capped at 1/20 of the run and the ramp at 1/10.
    """
    if decay is None:
        decay = min(OFFICIAL_EMA_DECAY, 1.0 - 1.0 / max(optimizer_steps / 20, 10.0))
    if tau is None:
        tau = min(OFFICIAL_EMA_TAU, max(optimizer_steps / 10, 1.0))
    if not 0.0 <= decay < 1.0 or tau <= 0:
        raise InputError(f"EMA decay must be in [0, 1) and its ramp positive, got {decay} and {tau}")
    return decay, tau


def planned_epochs(epochs_done: int, seconds_so_far: float, time_limit_s: float, most: int) -> int:
    """How many epochs fit in ``time_limit_s`` at the mean pace so far (at least those done, at most ``most``).

    Re-planned after each epoch, so the cosine schedule ends when the time does rather than being cut off
    half-way (Ultralytics' ``time`` argument works the same way).
    """
    if epochs_done < 1 or seconds_so_far <= 0:
        return most
    fit = int(time_limit_s * epochs_done / seconds_so_far)
    return max(epochs_done, min(most, fit))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train(config: TrainConfig, train_split: Split, val_split: Split | None = None,
          log: Callable[[str], None] = print) -> TrainResult:
    """Train ``config.model`` on ``train_split`` (from scratch or ``config.weights``); returns checkpoints and history."""
    from kapao_edge.model import build_model, save_checkpoint

    config.check()
    device = select_device(config.device)
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)
    hyp = config.hyp
    out_dir = Path(config.out_dir)

    records, num_keypoints = read_coco_keypoints(train_split.annotation_file, train_split.images_dir)
    preset = preset_for_keypoints(num_keypoints)
    dataset = KapaoDataset(records, num_keypoints, config.imgsz, hyp=hyp, augment=True, seed=config.seed,
                           cache_images=config.cache_images)
    val_records: list[ImageAnnotations] = []
    if val_split is not None:
        val_records, val_keypoints = read_coco_keypoints(val_split.annotation_file, val_split.images_dir)
        if val_keypoints != num_keypoints:
            raise InputError(f"validation set has {val_keypoints} keypoints, training set {num_keypoints}")

    model = build_model(config.model, preset)
    if config.weights is not None:
        initialise_from(model, config.weights, config.model)
    model = model.to(device).train()
    detect = model.detect
    gains = LossGains.scaled(hyp, detect.nl, detect.nc, config.imgsz)
    compute_loss = KapaoLoss(detect.anchors, detect.nc, num_keypoints, gains, hyp.anchor_t)

    batches_per_epoch = -(-len(dataset) // config.batch_size)
    full_accumulate = max(round(config.nominal_batch_size / config.batch_size), 1)
    weight_decay = hyp.weight_decay * config.batch_size * full_accumulate / config.nominal_batch_size
    lr0 = config.lr0 if config.lr0 is not None else (hyp.lr0 if config.optimizer == "sgd" else ADAMW_LR0)
    optimizer = make_optimizer(model, config.optimizer, lr0, hyp.momentum, weight_decay)
    optimizer_steps = config.epochs * -(-batches_per_epoch // full_accumulate)
    ema_decay, ema_tau = ema_settings(optimizer_steps, config.ema_decay, config.ema_tau)
    ema = ModelEMA(model, decay=ema_decay, tau=ema_tau)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    total_iters = config.epochs * batches_per_epoch
    warmup_iters = min(max(round(hyp.warmup_epochs * batches_per_epoch), config.min_warmup_iters), total_iters // 2)
    bias_lr_start = hyp.warmup_bias_lr if config.optimizer == "sgd" else 0.0

    run_info = {**asdict(config), "out_dir": str(out_dir), "weights": str(config.weights) if config.weights else None,
                "hyp": asdict(hyp), "preset": preset.name,
                "train_images": len(dataset), "val_images": len(val_records), "lr0": lr0,
                "weight_decay": weight_decay, "warmup_iters": warmup_iters, "loss_gains": asdict(gains),
                "ema_decay": ema_decay, "ema_tau": ema_tau, "optimizer_steps": optimizer_steps}
    write_text_atomic(out_dir / "train_config.json", json.dumps(run_info, indent=2) + "\n")
    log(f"training {config.model} ({preset.name}, {model.num_parameters():,} parameters) on {len(dataset)} "
        f"images, {config.epochs} epochs{_time_note(config.time_limit_min)}, imgsz {config.imgsz}, "
        f"batch {config.batch_size}, device {device}")

    history: list[dict] = []
    best_ap: float | None = None
    last_path, best_path = out_dir / "last.pt", out_dir / "best.pt"
    step, last_opt_step = 0, -1
    total_epochs, training_started = config.epochs, time.perf_counter()
    epoch = 0
    while epoch < total_epochs:
        model.train()
        dataset.set_epoch(epoch)
        loader = make_loader(dataset, config.batch_size, shuffle=True, workers=config.workers, seed=config.seed)
        epoch_lr = cosine_factor(epoch, total_epochs, hyp.lrf)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * epoch_lr
        loss_sum = torch.zeros(len(LOSS_NAMES))
        images_seen, started = 0, time.perf_counter()
        accumulate = full_accumulate
        optimizer.zero_grad(set_to_none=True)

        for images, targets, _ in loader:
            if step <= warmup_iters:
                accumulate = max(1, round(interpolate(step, warmup_iters, 1, full_accumulate)))
                for index, group in enumerate(optimizer.param_groups):
                    start = bias_lr_start if index == BIAS_GROUP else 0.0
                    group["lr"] = interpolate(step, warmup_iters, start, group["initial_lr"] * epoch_lr)
                    if "momentum" in group:
                        group["momentum"] = interpolate(step, warmup_iters, hyp.warmup_momentum, hyp.momentum)

            images = images.to(device, non_blocking=True).float() / 255.0  # (B, 3, S, S)
            with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
                outputs = model(images)
            loss, components = compute_loss(outputs, targets)
            if not torch.isfinite(loss):
                raise InputError(f"the loss became {loss.item()} at epoch {epoch}; lower --lr")
            scaler.scale(loss).backward()

            if step - last_opt_step >= accumulate:
                _optimizer_step(model, optimizer, scaler, ema)
                last_opt_step = step
            loss_sum += components.cpu() * len(images)
            images_seen += len(images)
            step += 1
        if last_opt_step != step - 1:  # flush gradients left over from an incomplete accumulation
            _optimizer_step(model, optimizer, scaler, ema)
            last_opt_step = step - 1

        seconds = time.perf_counter() - started
        mean = loss_sum / max(images_seen, 1)
        record: dict = {"epoch": epoch, **{name: round(float(v), 6) for name, v in zip(LOSS_NAMES, mean)},
                        "loss": round(float(mean.sum()), 6), "lr": [g["lr"] for g in optimizer.param_groups],
                        "images": images_seen, "seconds": round(seconds, 3),
                        "images_per_s": round(images_seen / seconds, 3) if seconds > 0 else None}

        if config.time_limit_min is not None:
            total_epochs = planned_epochs(epoch + 1, time.perf_counter() - training_started,
                                          config.time_limit_min * 60.0, config.epochs)
            record["planned_epochs"] = total_epochs
        is_last = epoch == total_epochs - 1
        if val_records and ((epoch + 1) % config.val_interval == 0 or is_last):
            from kapao_edge.train.validate import keypoint_ap, predict_records

            poses = predict_records(ema.ema, val_records, config.imgsz, device, batch_size=config.batch_size)
            metrics = keypoint_ap(val_split.annotation_file, val_records, poses, preset)
            record.update(metrics)

        meta = {"epoch": epoch, "imgsz": config.imgsz, "model_name": config.model, "trained_by": "kapao-edge train",
                "ema_updates": ema.updates, **{k: record[k] for k in ("ap", "ap50", "ar") if k in record}}
        save_checkpoint(ema.ema, last_path, **meta)
        if "ap" in record and (best_ap is None or record["ap"] > best_ap):
            best_ap = record["ap"]
            save_checkpoint(ema.ema, best_path, **meta)
        history.append(record)
        write_text_atomic(out_dir / LOG_NAME, "".join(json.dumps(r) + "\n" for r in history))
        log(_summary(record, total_epochs))
        epoch += 1

    return TrainResult(last_checkpoint=last_path, best_checkpoint=best_path if best_ap is not None else None,
                       best_ap=best_ap, history=history)


def initialise_from(model: torch.nn.Module, weights: Path | str, config_name: str) -> None:
    """Copy a checkpoint's weights into a fresh, unfused ``model`` (fine-tuning, or longer schedules in stages)."""
    from kapao_edge.model.checkpoint import read_checkpoint

    source = read_checkpoint(weights).model
    if source.config["name"] != config_name:
        raise InputError(f"--weights {weights} holds a {source.config['name']} model, but --model is {config_name}")
    if source.num_keypoints != model.num_keypoints:
        raise InputError(f"--weights {weights} has {source.num_keypoints} keypoints, the training set "
                         f"{model.num_keypoints}")
    if source.is_fused:
        raise InputError(f"--weights {weights} holds fused (Conv+BN folded) weights; train from an unfused checkpoint")
    model.load_state_dict(source.float().state_dict())


def _optimizer_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
                    ema: ModelEMA) -> None:
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    ema.update(model)


def _time_note(minutes: float | None) -> str:
    return "" if minutes is None else f" at most (re-planned to end within {minutes:g} min)"


def _summary(record: dict, epochs: int) -> str:
    losses = " ".join(f"{name} {record[name]:.4f}" for name in LOSS_NAMES)
    text = f"epoch {record['epoch'] + 1}/{epochs}  loss {record['loss']:.4f} ({losses})"
    if record.get("images_per_s"):
        text += f"  {record['images_per_s']:.1f} img/s"
    if "ap" in record:
        text += f"  AP {record['ap']:.1f}  AP50 {record['ap50']:.1f}"
    return text
