"""Exact module rewrites applied before export: same function, fewer or cheaper graph nodes.

- Focus (4 strided slices + concat + k x k conv) -> one 2k x 2k convolution with stride 2: the
  weights are rearranged so that every output equals the original to float rounding.
- SPP(3, 5, 7) (three parallel max-pools) -> cascaded 3x3 max-pools (SPPF-style): a 5x5 max is a
  3x3 max of a 3x3 max, also at the borders, because max-pool padding never wins.
- BatchNorm folded into the preceding convolution (``KapaoModel.fuse``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn

from kapao_edge.model.modules import SPP, Conv, Focus

# Attributes KapaoModel.forward reads from each top-level layer (routing), copied onto replacements.
_ROUTING_ATTRS = ("i", "f", "type", "np")


class FocusConv(nn.Module):
    """The Focus layer as one strided convolution: input (B, C, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, conv: Conv) -> None:
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CascadedSPP(nn.Module):
    """SPP whose growing pooling windows come from repeating one 3x3 max-pool (as YOLOv5's SPPF)."""

    def __init__(self, spp: SPP, repeats: list[int]) -> None:
        super().__init__()
        self.cv1 = spp.cv1
        self.cv2 = spp.cv2
        self.repeats = repeats  # extra 3x3 pools between consecutive outputs
        self.pool = nn.MaxPool2d(kernel_size=3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)  # (B, C, H, W)
        pooled = [x]
        y = x
        for repeat in self.repeats:
            for _ in range(repeat):
                y = self.pool(y)
            pooled.append(y)
        return self.cv2(torch.cat(pooled, 1))  # (B, (len+1) * C, H, W) -> cv2


@torch.no_grad()
def focus_to_conv(focus: Focus) -> FocusConv:
    """A FocusConv computing exactly what ``focus`` computes."""
    inner = focus.conv.conv  # Conv2d over the 4C space-to-depth channels
    if inner.groups != 1 or inner.dilation != (1, 1) or inner.kernel_size[0] != inner.kernel_size[1]:
        raise ValueError("focus_to_conv supports square, ungrouped, undilated convolutions only")
    kernel, stride, pad = inner.kernel_size[0], inner.stride[0], inner.padding[0]
    c_out, c4 = inner.out_channels, inner.in_channels
    c_in = c4 // 4
    # Focus phase order (row offset, col offset): (0,0), (1,0), (0,1), (1,1); channel = phase * C + c.
    phases = ((0, 0), (1, 0), (0, 1), (1, 1))
    weight = inner.weight.new_zeros(c_out, c_in, 2 * kernel, 2 * kernel)  # (C_out, C, 2k, 2k)
    for phase, (dy, dx) in enumerate(phases):
        block = inner.weight[:, phase * c_in : (phase + 1) * c_in]  # (C_out, C, k, k)
        weight[:, :, dy::2, dx::2] = block  # full-resolution tap (2a + dy, 2b + dx)
    conv = nn.Conv2d(c_in, c_out, 2 * kernel, 2 * stride, 2 * pad, bias=inner.bias is not None)
    conv = conv.to(device=inner.weight.device, dtype=inner.weight.dtype)
    conv.weight.copy_(weight)
    if inner.bias is not None:
        conv.bias.copy_(inner.bias)
    wrapped = copy.deepcopy(focus.conv)  # keeps bn (if any) and the activation
    wrapped.conv = conv
    return FocusConv(wrapped)


def spp_to_cascade(spp: SPP) -> CascadedSPP | None:
    """A CascadedSPP equal to ``spp``, or None when its kernels are not ascending odd sizes >= 3."""
    kernels = [pool.kernel_size for pool in spp.m]
    kernels = [k if isinstance(k, int) else k[0] for k in kernels]
    if any(k < 3 or k % 2 == 0 for k in kernels) or kernels != sorted(set(kernels)):
        return None
    if any(pool.stride not in (1, (1, 1)) or pool.padding not in (k // 2, (k // 2, k // 2)) for pool, k in zip(spp.m, kernels)):
        return None
    previous, repeats = 1, []
    for k in kernels:
        repeats.append((k - previous) // 2)  # each 3x3 pool widens the window by 2
        previous = k
    return CascadedSPP(spp, repeats)


@dataclass
class RewriteReport:
    fused_batchnorm: bool = False
    focus_rewritten: int = 0
    spp_rewritten: int = 0
    skipped: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"BatchNorm fused: {'yes' if self.fused_batchnorm else 'no'}"]
        parts.append(f"Focus -> Conv: {self.focus_rewritten}")
        parts.append(f"SPP -> cascaded pools: {self.spp_rewritten}")
        return ", ".join(parts)


def apply_rewrites(model: nn.Module, *, fuse: bool = True, focus: bool = True, spp: bool = True) -> RewriteReport:
    """Rewrite ``model`` in place (eval mode assumed) and say what changed."""
    report = RewriteReport()
    if fuse and hasattr(model, "fuse"):
        model.fuse()
        report.fused_batchnorm = True
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            replacement: nn.Module | None = None
            if focus and isinstance(child, Focus):
                replacement = focus_to_conv(child)
                report.focus_rewritten += 1
            elif spp and isinstance(child, SPP):
                replacement = spp_to_cascade(child)
                if replacement is None:
                    report.skipped.append(f"{name}: SPP kernels not rewritable")
                else:
                    report.spp_rewritten += 1
            if replacement is not None:
                for attr in _ROUTING_ATTRS:
                    if hasattr(child, attr):
                        setattr(replacement, attr, getattr(child, attr))
                replacement.train(child.training)
                setattr(parent, name, replacement)
    return report
