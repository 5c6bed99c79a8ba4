"""Building blocks of the YOLOv5-P6 network that KAPAO uses.

Attribute names (``conv``, ``bn``, ``cv1``, ``m`` ...) follow the official modules on purpose: they
become the state_dict keys, and equal keys are what lets official weights load without renaming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def autopad(kernel: int) -> int:
    """'Same' padding for an odd kernel."""
    return kernel // 2


class Conv(nn.Module):
    """Conv2d (no bias) -> BatchNorm2d -> SiLU; ``fuse()`` folds the BatchNorm into the convolution."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, autopad(kernel), bias=False)
        self.bn: nn.BatchNorm2d | None = nn.BatchNorm2d(c_out, eps=BN_EPS, momentum=BN_MOMENTUM)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.bn is not None:
            x = self.bn(x)
        return self.act(x)

    @torch.no_grad()
    def fuse(self) -> None:
        """Replace conv+bn by one biased conv computing the same eval-mode function."""
        if self.bn is None:
            return
        self.conv = fuse_conv_and_bn(self.conv, self.bn)
        self.bn = None


@torch.no_grad()
def fuse_conv_and_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A biased Conv2d equal to ``bn(conv(x))`` with the BatchNorm's running statistics.

    Computed in float64 so the folded weights round once, not at every intermediate step.
    """
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)  # (C_out,)
    weight = conv.weight.double() * scale.view(-1, 1, 1, 1)  # (C_out, C_in/g, k, k)
    conv_bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)  # (C_out,)
    bias = (conv_bias - bn.running_mean.double()) * scale + bn.bias.double()  # (C_out,)
    fused.weight.copy_(weight.to(conv.weight.dtype))
    fused.bias.copy_(bias.to(conv.weight.dtype))
    fused.requires_grad_(conv.weight.requires_grad)
    return fused


class Focus(nn.Module):
    """Space-to-depth: the four pixel phases of each 2x2 block stacked as channels, then a Conv."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 1, stride: int = 1) -> None:
        super().__init__()
        self.conv = Conv(c_in * 4, c_out, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, 4C, H/2, W/2) -> conv
        phases = [x[..., ::2, ::2], x[..., 1::2, ::2], x[..., ::2, 1::2], x[..., 1::2, 1::2]]
        return self.conv(torch.cat(phases, 1))


class Bottleneck(nn.Module):
    """1x1 then 3x3 Conv, with a residual connection when shapes allow it."""

    def __init__(self, c_in: int, c_out: int, shortcut: bool = True, expansion: float = 0.5) -> None:
        super().__init__()
        hidden = int(c_out * expansion)
        self.cv1 = Conv(c_in, hidden, 1, 1)
        self.cv2 = Conv(hidden, c_out, 3, 1)
        self.add = shortcut and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv2(self.cv1(x))
        return x + y if self.add else y


class C3(nn.Module):
    """CSP block: a Bottleneck chain on one half of the channels, concatenated with a 1x1 bypass."""

    def __init__(
        self, c_in: int, c_out: int, repeats: int = 1, shortcut: bool = True, expansion: float = 0.5
    ) -> None:
        super().__init__()
        hidden = int(c_out * expansion)
        self.cv1 = Conv(c_in, hidden, 1, 1)
        self.cv2 = Conv(c_in, hidden, 1, 1)
        self.cv3 = Conv(2 * hidden, c_out, 1)
        self.m = nn.Sequential(*(Bottleneck(hidden, hidden, shortcut, expansion=1.0) for _ in range(repeats)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), dim=1))


class SPP(nn.Module):
    """Spatial pyramid pooling: parallel stride-1 max pools of several sizes, concatenated."""

    def __init__(self, c_in: int, c_out: int, kernels: Sequence[int] = (3, 5, 7)) -> None:
        super().__init__()
        hidden = c_in // 2
        self.cv1 = Conv(c_in, hidden, 1, 1)
        self.cv2 = Conv(hidden * (len(kernels) + 1), c_out, 1, 1)
        self.m = nn.ModuleList(nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2) for k in kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.cv1(x)
        return self.cv2(torch.cat([x, *(pool(x) for pool in self.m)], 1))


class Concat(nn.Module):
    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.d = dim

    def forward(self, xs: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(xs, self.d)


class Detect(nn.Module):
    """The per-level 1x1 prediction convolutions and the KAPAO decode.

    Each anchor predicts ``No = 5 + nc + num_coords`` numbers: box (4), objectness, ``nc`` class
    scores (person, then one per keypoint) and ``num_coords`` keypoint offsets (x, y per keypoint).
    """

    def __init__(
        self,
        nc: int,
        num_coords: int,
        anchors: Sequence[Sequence[float]],
        channels: Sequence[int],
        strides: Sequence[int],
    ) -> None:
        super().__init__()
        self.nc = nc
        self.num_coords = num_coords
        self.no = 5 + nc + num_coords
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        if len(channels) != self.nl or len(strides) != self.nl:
            raise ValueError("Detect needs one input channel count and one stride per anchor level")
        self.strides = tuple(float(s) for s in strides)
        pixels = torch.tensor(anchors, dtype=torch.float32).view(self.nl, self.na, 2)  # (nl, na, 2)
        stride_t = torch.tensor(self.strides).view(-1, 1, 1)  # (nl, 1, 1)
        # Same two buffers as the official Detect: grid units, and pixels shaped for broadcasting.
        self.register_buffer("anchors", pixels / stride_t)  # (nl, na, 2)
        self.register_buffer("anchor_grid", pixels.clone().view(self.nl, 1, self.na, 1, 1, 2))
        self.m = nn.ModuleList(nn.Conv2d(c, self.na * self.no, 1) for c in channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor] | torch.Tensor:
        raw = self.head(features)
        return raw if self.training else self.decode(raw)

    def head(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """Per-level raw predictions, (B, na, H, W, No) each: what training losses consume."""
        outputs = []
        for level, x in enumerate(features):
            y = self.m[level](x)  # (B, na*No, H, W)
            b, _, h, w = y.shape
            outputs.append(y.view(b, self.na, self.no, h, w).permute(0, 1, 3, 4, 2).contiguous())
        return outputs

    def decode(self, raw: list[torch.Tensor]) -> torch.Tensor:
        """Raw per-level tensors -> (B, N, No) in input pixels (KAPAO reference, section 2)."""
        decoded = [
            decode_level(r, self.anchor_grid[i], self.strides[i], self.num_coords) for i, r in enumerate(raw)
        ]
        return torch.cat(decoded, 1)

    @torch.no_grad()
    def initialize_biases(self) -> None:
        """Priors for a fresh head: about 8 objects per 640 px image, classes near 0.6 / nc."""
        for conv, stride in zip(self.m, self.strides):
            bias = conv.bias.view(self.na, self.no)  # (na, No)
            bias[:, 4] += math.log(8 / (640 / stride) ** 2)
            bias[:, 5 : 5 + self.nc] += math.log(0.6 / (self.nc - 0.99))


def decode_level(
    raw: torch.Tensor, anchor_grid: torch.Tensor, stride: float, num_coords: int
) -> torch.Tensor:
    """Decode one level: (B, na, H, W, No) raw -> (B, na*H*W, No), rows ordered (anchor, gy, gx).

    KAPAO's formulas (y = sigmoid(raw), g the cell, s the stride) are each a quadratic in y, so the
    whole level is one expression, ``y * (a + c * y) + b``, with per-channel ``a``, ``c`` and a ``b``
    that also depends on the cell:

        xy        (2y - 0.5 + g) * s         a = 2s          c = 0           b = (g - 0.5) s
        wh        (2y)^2 * anchor            a = 0           c = 4 anchor    b = 0
        scores    y                          a = 1           c = 0           b = 0
        keypoints (4y - 2) * anchor + g * s  a = 4 anchor    c = 0           b = g s - 2 anchor

    Exported, that is five whole-tensor elementwise ops instead of a split into narrow slices, ten
    small ops and a concat (about 2 ms less per kapao_s 640 frame in ONNX Runtime CPU's profile).
    The values equal the slice-by-slice formulas to float rounding. The grid comes from the tensor's
    own shape at every call and nothing is written in place, so the function traces and exports with
    dynamic H, W.
    """
    b, na, h, w, no = raw.shape
    k = num_coords // 2
    scores = no - 4 - num_coords  # objectness and class scores, kept as probabilities
    y = raw.sigmoid()  # (B, na, H, W, No)
    anchors = anchor_grid.to(raw.dtype).view(1, na, 1, 1, 2)  # (1, na, 1, 1, 2) pixels
    gy, gx = torch.meshgrid(
        torch.arange(h, device=raw.device, dtype=raw.dtype),
        torch.arange(w, device=raw.device, dtype=raw.dtype),
        indexing="ij",
    )
    cells = torch.stack((gx, gy), 2).view(1, 1, h, w, 2) * stride  # (1, 1, H, W, 2) cell origin, pixels

    one = torch.ones_like(anchors[..., :1])  # (1, na, 1, 1, 1)
    zero = one * 0

    def per_channel(xy: torch.Tensor, wh: torch.Tensor, score: torch.Tensor, keypoint: torch.Tensor) -> torch.Tensor:
        """(1, na, 1, 1, No) coefficients from one value (or x, y pair) per channel group."""
        return torch.cat([xy.expand(1, na, 1, 1, 2), wh.expand(1, na, 1, 1, 2), score.expand(1, na, 1, 1, scores),
                          keypoint.expand(1, na, 1, 1, 2).repeat(1, 1, 1, 1, k)], -1)

    linear = per_channel(one * 2 * stride, zero, one, anchors * 4)  # a
    quadratic = per_channel(zero, anchors * 4, zero, zero)  # c
    anchor_offset = per_channel(zero - 0.5 * stride, zero, zero, anchors * -2)  # the anchor part of b
    cell_offset = torch.cat([cells, (cells[..., :1] * 0).expand(1, 1, h, w, 2 + scores),
                             cells.repeat(1, 1, 1, 1, k)], -1)  # (1, 1, H, W, No) the cell part of b
    return (y * (linear + quadratic * y) + (anchor_offset + cell_offset)).view(b, -1, no)  # (B, na*H*W, No)
