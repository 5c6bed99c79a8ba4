"""Parameter groups, learning-rate schedule and weight EMA."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from kapao_edge.errors import InputError
from kapao_edge.model import build_model
from kapao_edge.train.optim import ModelEMA, cosine_factor, interpolate, make_optimizer, parameter_groups


def test_groups_cover_every_parameter_once_and_decay_only_weights():
    model = build_model("kapao_tiny")
    bn_weights, weights, biases = parameter_groups(model)
    grouped = [id(p) for p in (*bn_weights, *weights, *biases)]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    assert len(set(grouped)) == len(grouped)
    bn_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert {id(p) for p in bn_weights} == bn_ids
    assert all(p.dim() == 4 for p in weights)  # only convolution kernels take weight decay
    assert all(p.dim() == 1 for p in biases)

    optimizer = make_optimizer(model, "sgd", 0.01, 0.937, 5e-4)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.0, 5e-4, 0.0]
    assert optimizer.param_groups[0]["nesterov"] is True
    adamw = make_optimizer(model, "adamw", 1e-3, 0.9, 5e-4)
    assert isinstance(adamw, torch.optim.AdamW) and adamw.param_groups[0]["betas"] == (0.9, 0.999)
    assert [g["weight_decay"] for g in adamw.param_groups] == [0.0, 5e-4, 0.0]
    with pytest.raises(InputError, match="unknown optimizer"):
        make_optimizer(model, "rmsprop", 0.01, 0.9, 0.0)


def test_cosine_runs_from_one_to_the_final_factor():
    values = [cosine_factor(e, 10, 0.2) for e in range(11)]
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.2)
    assert values[5] == pytest.approx(0.6)
    assert all(a > b for a, b in zip(values, values[1:]))
    assert interpolate(5, 10, 0.1, 0.01) == pytest.approx(0.055)
    assert interpolate(20, 10, 0.1, 0.01) == pytest.approx(0.01)


def test_ema_ramps_its_decay_and_averages_weights_and_buffers():
    model = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.BatchNorm2d(1))
    nn.init.constant_(model[0].weight, 1.0)
    ema = ModelEMA(model, decay=0.9999, tau=2000)
    with torch.no_grad():
        model[0].weight.fill_(3.0)
        model[1].running_mean.fill_(2.0)
    ema.update(model)
    first = 0.9999 * (1 - math.exp(-1 / 2000))
    assert ema.current_decay() == pytest.approx(first)
    assert ema.ema[0].weight.item() == pytest.approx(first * 1.0 + (1 - first) * 3.0, rel=1e-6)
    assert ema.ema[1].running_mean.item() == pytest.approx((1 - first) * 2.0, rel=1e-6)
    assert ema.ema[1].num_batches_tracked.item() == 0  # integer buffers are not averaged
    assert not any(p.requires_grad for p in ema.ema.parameters())
    ema.updates = 100_000
    assert ema.current_decay() == pytest.approx(0.9999)
