"""Training KAPAO models: labels and augmentation, target assignment and loss, the training loop."""

from kapao_edge.train.dataset import KapaoDataset, collate, make_loader, resolve_split
from kapao_edge.train.hyp import Hyp, LossGains
from kapao_edge.train.loss import KapaoLoss, build_targets
from kapao_edge.train.trainer import Split, TrainConfig, TrainResult, train

__all__ = [
    "Hyp",
    "KapaoDataset",
    "KapaoLoss",
    "LossGains",
    "Split",
    "TrainConfig",
    "TrainResult",
    "build_targets",
    "collate",
    "make_loader",
    "resolve_split",
    "train",
]
