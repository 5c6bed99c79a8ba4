"""``kapao-edge train``: train a KAPAO model (from scratch or from a checkpoint) on a COCO person-keypoints set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_METAVAR, console, long_side, model_imgsz, parse_imgsz, split_list, user_errors

TRAIN_IMGSZ = 256  # from scratch; a --weights checkpoint trains at the size it documents
_SPLIT_HELP = "a folder holding images/ and one COCO person-keypoints .json, or the .json itself"


@user_errors
def train(
    data: Annotated[Path, typer.Option("--data", help=f"Training set: {_SPLIT_HELP}.")],
    images: Annotated[Optional[Path], typer.Option("--images", metavar="DIR", help="Training images folder, when --data is a .json.")] = None,
    val_data: Annotated[Optional[Path], typer.Option("--val-data", help=f"Held-out set for AP: {_SPLIT_HELP}.")] = None,
    val_images: Annotated[Optional[Path], typer.Option("--val-images", metavar="DIR", help="Validation images folder, when --val-data is a .json.")] = None,
    model: Annotated[str, typer.Option("--model", metavar="NAME", help="Model config: kapao_tiny, kapao_n, kapao_s, kapao_m, kapao_l.")] = "kapao_tiny",
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 10,
    imgsz: Annotated[Optional[str], typer.Option("--imgsz", metavar=IMGSZ_METAVAR, show_default=False, help=f"Square training size N (HxW with H == W), a multiple of 64 [default: the --weights checkpoint's size, else {TRAIN_IMGSZ}].")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1)] = 16,
    lr: Annotated[Optional[float], typer.Option("--lr", help="Initial learning rate (default 0.01 SGD, 0.001 AdamW).")] = None,
    optimizer: Annotated[str, typer.Option("--optimizer", metavar="sgd|adamw", help="sgd or adamw.")] = "sgd",
    device: Annotated[str, typer.Option("--device", metavar="DEVICE", help="cpu, cuda or cuda:N (AMP on CUDA).")] = "cpu",
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="Run folder: last.pt, best.pt, train_log.jsonl.")] = Path("runs/train"),
    seed: Annotated[int, typer.Option("--seed")] = 0,
    workers: Annotated[int, typer.Option("--workers", min=0, help="Data-loading processes (0: in this process).")] = 0,
    val_interval: Annotated[int, typer.Option("--val-interval", min=1, help="Validate every N epochs.")] = 1,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="Torch CPU threads.")] = None,
    nbs: Annotated[int, typer.Option("--nbs", min=1, help="Nominal batch: gradients accumulate to about this many images.")] = 64,
    ema_decay: Annotated[Optional[float], typer.Option("--ema-decay", help="Weight EMA decay (default: 0.9999, shortened for short runs).")] = None,
    cache_images: Annotated[bool, typer.Option("--cache-images/--no-cache-images", help="Keep decoded images in RAM.")] = False,
    weights: Annotated[Optional[Path], typer.Option("--weights", metavar="FILE", help="Start from this checkpoint (same --model) instead of from scratch.")] = None,
    time_limit: Annotated[Optional[float], typer.Option("--time-limit", help="Train about this many minutes: the epoch count is re-planned after each epoch so the cosine schedule ends on time (--epochs stays the most).")] = None,
    hyp: Annotated[Optional[list[str]], typer.Option("--hyp", metavar="KEY=NUMBER", help="Override hyper-parameters, KEY=NUMBER; repeat or comma-separate, e.g. --hyp scale=0.5,mosaic=0.")] = None,
) -> None:
    """Train a KAPAO model; the EMA weights are saved each epoch (last.pt) and at the best AP (best.pt)."""
    from kapao_edge.train.dataset import resolve_split
    from kapao_edge.train.hyp import Hyp
    from kapao_edge.train.trainer import Split, TrainConfig
    from kapao_edge.train.trainer import train as run_training

    requested = parse_imgsz(imgsz)
    size = long_side(requested if requested is not None else model_imgsz(weights) if weights else TRAIN_IMGSZ, "train")
    train_split = Split(*resolve_split(data, images))
    val_split = Split(*resolve_split(val_data, val_images)) if val_data is not None else None
    config = TrainConfig(model=model, epochs=epochs, imgsz=size, batch_size=batch, optimizer=optimizer.lower(),
                         lr0=lr, device=device, out_dir=out, seed=seed, workers=workers, val_interval=val_interval,
                         threads=threads, nominal_batch_size=nbs, ema_decay=ema_decay,
                         cache_images=cache_images, weights=weights, time_limit_min=time_limit, hyp=Hyp().updated(**_parse_overrides(split_list(hyp))))
    result = run_training(config, train_split, val_split, log=lambda line: console.print(line, highlight=False))
    console.print(f"last checkpoint: {result.last_checkpoint}", highlight=False)
    if result.best_checkpoint is not None:
        console.print(f"best checkpoint: {result.best_checkpoint} (AP {result.best_ap:.1f})", highlight=False)


def _parse_overrides(pairs: list[str]) -> dict[str, float]:
    from kapao_edge.errors import InputError

    overrides: dict[str, float] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            if not sep:
                raise ValueError
            overrides[key.strip()] = float(value)
        except ValueError:
            raise InputError(f"--hyp takes KEY=NUMBER, got {pair!r}") from None
    return overrides
