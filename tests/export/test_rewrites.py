"""The export rewrites are exact: rewritten modules compute what the originals compute."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from kapao_edge.export.rewrites import CascadedSPP, FocusConv, apply_rewrites, focus_to_conv, spp_to_cascade
from kapao_edge.model import load_model
from kapao_edge.model.modules import SPP, Focus


def _randomise_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    """Non-trivial running statistics, so an error in folding or in the rewrite would show."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=generator))
            bn.running_var.copy_(torch.rand(bn.num_features, generator=generator) + 0.5)
            bn.weight.data.copy_(torch.randn(bn.num_features, generator=generator))
            bn.bias.data.copy_(torch.randn(bn.num_features, generator=generator))


@pytest.mark.parametrize("kernel", [1, 3])
@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize("shape", [(1, 3, 64, 96), (2, 3, 10, 6)])
def test_focus_to_conv_is_exact(kernel: int, fused: bool, shape: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(kernel)
    focus = Focus(3, 16, kernel).eval()
    _randomise_batchnorm(focus, generator)
    if fused:
        focus.conv.fuse()
    rewritten = focus_to_conv(focus).eval()
    assert isinstance(rewritten, FocusConv)
    assert rewritten.conv.conv.kernel_size == (2 * kernel, 2 * kernel) and rewritten.conv.conv.stride == (2, 2)
    x = torch.rand(shape, generator=generator)
    with torch.no_grad():
        expected, actual = focus(x), rewritten(x)
    assert actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kernels", [(3, 5, 7), (5, 9, 13)])
@pytest.mark.parametrize("hw", [(8, 12), (3, 5), (1, 1)])
def test_spp_cascade_is_exact_including_borders(kernels: tuple[int, ...], hw: tuple[int, int]) -> None:
    """Windows larger than the map (7x7 on 3x5) test the border argument, not only the interior."""
    generator = torch.Generator().manual_seed(sum(kernels))
    spp = SPP(16, 24, kernels).eval()
    _randomise_batchnorm(spp, generator)
    rewritten = spp_to_cascade(spp)
    assert isinstance(rewritten, CascadedSPP)
    x = torch.randn(2, 16, *hw, generator=generator) * 3 - 1  # negatives: zero padding would show
    with torch.no_grad():
        torch.testing.assert_close(rewritten(x), spp(x), rtol=0, atol=0)


def test_spp_with_unordered_or_even_kernels_is_left_alone() -> None:
    assert spp_to_cascade(SPP(8, 8, (5, 3))) is None
    assert spp_to_cascade(SPP(8, 8, (3, 4))) is None


def test_whole_model_rewrite_matches_the_original(reference_dir: Path) -> None:
    original = load_model(reference_dir / "kapao_tiny_coco_random.pt", fuse=False).eval()
    rewritten = load_model(reference_dir / "kapao_tiny_coco_random.pt", fuse=False).eval()
    report = apply_rewrites(rewritten)
    assert (report.fused_batchnorm, report.focus_rewritten, report.spp_rewritten) == (True, 1, 1)
    assert rewritten.is_fused
    assert not any(isinstance(m, (Focus, SPP)) for m in rewritten.modules())
    x = torch.rand(2, 3, 128, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, actual = original(x), rewritten(x)
    scale = expected.abs().max()
    assert (actual - expected).abs().max() <= 1e-5 * scale
