"""Optimiser, learning-rate schedule and weight EMA, as the official YOLOv5/KAPAO trainer sets them up."""

from __future__ import annotations

import copy
import math
from typing import Literal

import torch
from torch import nn

from kapao_edge.errors import InputError

OptimizerName = Literal["sgd", "adamw"]
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")
BIAS_GROUP = 2  # index of the bias parameter group (its warm-up starts high, not at zero)


def parameter_groups(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter], list[nn.Parameter]]:
    """(BatchNorm weights, other weights, biases): weight decay only applies to the second group."""
    bn_weights, weights, biases = [], [], []
    for module in model.modules():
        bias = getattr(module, "bias", None)
        if isinstance(bias, nn.Parameter):
            biases.append(bias)
        weight = getattr(module, "weight", None)
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            bn_weights.append(module.weight)
        elif isinstance(weight, nn.Parameter):
            weights.append(weight)
    return bn_weights, weights, biases


def make_optimizer(model: nn.Module, name: str, lr0: float, momentum: float, weight_decay: float) -> torch.optim.Optimizer:
    """Three groups in a fixed order (BN weights, decayed weights, biases)."""
    bn_weights, weights, biases = parameter_groups(model)
    if name == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(bn_weights, lr=lr0, momentum=momentum, nesterov=True)
    elif name == "adamw":
        optimizer = torch.optim.AdamW(bn_weights, lr=lr0, betas=(momentum, 0.999), weight_decay=0.0)
    else:
        raise InputError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
    optimizer.add_param_group({"params": weights, "weight_decay": weight_decay})
    optimizer.add_param_group({"params": biases, "weight_decay": 0.0})
    for group in optimizer.param_groups:
        group["initial_lr"] = lr0
    return optimizer


def cosine_factor(epoch: int, epochs: int, final_factor: float) -> float:
    """Half-cosine from 1 at epoch 0 to ``final_factor`` at ``epochs`` (the official one_cycle)."""
    return ((1 - math.cos(epoch * math.pi / epochs)) / 2) * (final_factor - 1) + 1


def interpolate(x: float, x_end: float, start: float, end: float) -> float:
    return start + (end - start) * min(max(x / x_end, 0.0), 1.0) if x_end > 0 else end


class ModelEMA:
    """Exponential moving average of every floating-point tensor of a model's state_dict.

    The decay ramps up as ``decay * (1 - exp(-updates / tau))`` so that the early, fast-changing
    weights are not frozen into the average.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999, tau: float = 2000.0, updates: int = 0) -> None:
        self.ema = copy.deepcopy(model).eval()
        for param in self.ema.parameters():
            param.requires_grad_(False)
        self.decay, self.tau, self.updates = decay, tau, updates

    def current_decay(self) -> float:
        return self.decay * (1 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = self.current_decay()
        source = model.state_dict()
        for name, value in self.ema.state_dict().items():
            if value.dtype.is_floating_point:
                value.mul_(decay).add_(source[name].detach(), alpha=1 - decay)
