"""Forward pass: decoded eval output against the official fixtures, training output, fusion, tracing."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from kapao_edge.errors import InputError
from kapao_edge.model import build_model, load_model
from kapao_edge.model.kapao import KapaoModel


def _randomise_batchnorm(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics, so that folding them into the convs is really exercised."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)


@pytest.fixture(scope="module")
def tiny_model() -> KapaoModel:
    torch.manual_seed(0)
    model = build_model("kapao_tiny", "coco")
    _randomise_batchnorm(model)
    return model


@pytest.mark.parametrize("fuse", [False, True])
def test_eval_output_matches_official(
    official_checkpoint, reference_io, assert_close_relative, fuse: bool
) -> None:
    model = load_model(official_checkpoint, fuse=fuse)
    with torch.no_grad():
        output = model(torch.from_numpy(reference_io["input"]))
    assert output.dtype == torch.float32
    assert_close_relative(output.numpy(), reference_io["output"])


def test_output_layout(tiny_model: KapaoModel) -> None:
    images = torch.rand(2, 3, 128, 192)
    with torch.no_grad():
        out = tiny_model(images)
    cells = sum((128 // s) * (192 // s) for s in (8, 16, 32, 64))
    assert out.shape == (2, 3 * cells, 57)
    # boxes are in input pixels, scores are probabilities, P3 row 0 sits near cell (0, 0)
    assert torch.all((out[..., 4:23] >= 0) & (out[..., 4:23] <= 1))
    assert torch.all(out[..., 2:4] > 0)
    assert -4 <= out[0, 0, 0] <= 12 and -4 <= out[0, 0, 1] <= 12
    # last row of the P3 block for anchor 0 is the bottom-right cell
    last = (128 // 8) * (192 // 8) - 1
    assert out[0, last, 0] > 192 - 8 - 4 and out[0, last, 1] > 128 - 8 - 4


def test_training_mode_returns_raw_levels(tiny_model: KapaoModel) -> None:
    model = copy.deepcopy(tiny_model).train()
    raw = model(torch.rand(1, 3, 128, 64))
    expected = [(1, 3, 16, 8, 57), (1, 3, 8, 4, 57), (1, 3, 4, 2, 57), (1, 3, 2, 1, 57)]  # (B, na, H/s, W/s, No)
    assert [tuple(r.shape) for r in raw] == expected
    # the eval decode of the same raw tensors is what eval mode returns
    model.eval()
    with torch.no_grad():
        images = torch.ones(1, 3, 64, 64)
        torch.testing.assert_close(model.detect.decode(model.features(images)), model(images))


@pytest.mark.parametrize("shape", [(1, 3, 100, 128), (1, 3, 128, 96), (1, 1, 64, 64), (3, 64, 64)])
def test_bad_input_shapes_raise_input_error(tiny_model: KapaoModel, shape) -> None:
    with pytest.raises(InputError, match="multiples of 64|(B, 3, H, W)"):
        tiny_model(torch.rand(*shape))


def test_fusion_is_exact(tiny_model: KapaoModel, assert_close_relative) -> None:
    images = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    fused = copy.deepcopy(tiny_model).fuse()
    assert fused.is_fused and not tiny_model.is_fused
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    assert not any(".bn." in key for key in fused.state_dict())
    with torch.no_grad():
        expected, actual = tiny_model(images), fused(images)
    assert_close_relative(actual.numpy(), expected.numpy(), 1e-4)
    # the BatchNorm statistics matter: dropping them instead of folding changes the output
    dropped = copy.deepcopy(tiny_model)
    for module in dropped.modules():
        if hasattr(module, "bn") and module.bn is not None:
            module.bn = None
    with torch.no_grad():
        assert np.abs(dropped(images).numpy() - expected.numpy()).max() > 1e-2


@pytest.mark.slow
def test_exports_with_dynamic_batch_and_size(tiny_model: KapaoModel) -> None:
    """Grids come from the feature-map shape at run time, so one export serves every input size."""
    from torch.export import Dim, export

    model = copy.deepcopy(tiny_model).fuse()
    # sides of 128+ px: a 64 px side gives a 1-cell P6 map, which torch.export specialises on (broadcasting)
    h, w = Dim("h", min=2, max=32), Dim("w", min=2, max=32)
    dynamic = {"images": {0: Dim("batch", min=1, max=16), 2: 64 * h, 3: 64 * w}}
    program = export(model, (torch.rand(2, 3, 128, 192),), dynamic_shapes=dynamic)
    other = torch.rand(3, 3, 192, 128)
    with torch.no_grad():
        torch.testing.assert_close(program.module()(other), model(other))


def test_build_model_is_seedable() -> None:
    torch.manual_seed(3)
    first = build_model("kapao_tiny")
    torch.manual_seed(3)
    second = build_model("kapao_tiny")
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), name
    assert not first.training
    # the official objectness prior for the stride-8 level: log(8 / (640 / 8) ** 2) on top of the init
    bias = first.detect.m[0].bias.view(3, -1)[:, 4]
    assert torch.all(bias < -6)
