"""Deployment I/O around the network: uint8 frames in, compact candidates out.

On a GPU the host should touch only uint8 pixels, and only the rows that can become poses should
cross back. ``DeployModel`` puts both in the graph, so the ONNX export, every file made from it
(FP16, INT8, TensorRT plans) and the torch CUDA engine run the same I/O by construction.

Input formats:
- ``float``: (B, 3, H, W) float32 RGB in [0, 1] (the reference contract);
- ``uint8``: (B, H, W, 3) uint8 BGR letterboxed pixels, as OpenCV and camera SDKs hand them over.
  The graph casts, flips BGR to RGB, transposes to CHW and divides by 255 in float32, which is
  bit-identical to the host path (``kapao_edge.data.preprocess.to_tensor_batch``).

Outputs:
- full: ``predictions`` (B, N, No), every decoded row;
- compact (``max_candidates=K``): ``predictions`` (B, K, No) holding the K rows of highest objectness
  above ``candidate_floor`` in their original row order, all-zero rows after them, and
  ``num_candidates`` (B,) int32, the rows above the floor before selection. Post-processing drops a
  row unless its objectness exceeds its threshold, so when every threshold is >= the floor and
  ``num_candidates <= K`` the compact rows give exactly the poses of the full output.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from kapao_edge.io_options import IoOptions


def uint8_frames_to_input(frames: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 BGR -> (B, 3, H, W) float32 RGB in [0, 1]; the Cast comes first, as TensorRT wants."""
    images = frames.to(torch.float32)  # (B, H, W, 3)
    images = images.flip(-1)  # BGR -> RGB
    return images.permute(0, 3, 1, 2) / 255.0  # (B, 3, H, W), channels-last in memory


def select_candidates(predictions: torch.Tensor, k: int, floor: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, N, No) -> the K highest-objectness rows above ``floor`` in row order (B, K, No), count (B,).

    Selected rows come first, in their original order (so NMS breaks score ties as on the full
    output), zero rows after them. Scores are padded with K sentinels, so K may exceed N (small
    inputs) without a shape-dependent branch that would break export.
    """
    batch, num_rows, num_outputs = predictions.shape
    objectness = predictions[..., 4]  # (B, N)
    above = objectness > floor  # (B, N)
    count = above.sum(dim=1, dtype=torch.int32)  # (B,)
    score = torch.where(above, objectness, torch.full_like(objectness, -1.0))  # (B, N)
    padded = torch.cat([score, score.new_full((batch, k), -2.0)], dim=1)  # (B, N + K)
    values, top = torch.topk(padded, k, dim=1)  # (B, K) each
    selected = values > floor  # (B, K): real rows above the floor (padding and sub-floor rows score < 0)
    past_end = num_rows + k  # larger than any index: unselected entries sort behind the selected ones
    order = torch.sort(torch.where(selected, top, top + past_end), dim=1).values  # (B, K)
    real = order < past_end  # (B, K): the first count (or K) entries
    rows = torch.where(real, order, torch.zeros_like(order)).clamp(max=num_rows - 1)  # (B, K) row indices
    gathered = torch.gather(predictions, 1, rows.unsqueeze(-1).expand(batch, k, num_outputs))  # (B, K, No)
    candidates = torch.where(real.unsqueeze(-1), gathered, torch.zeros_like(gathered))  # (B, K, No)
    return candidates, count


class DeployModel(nn.Module):
    """A KapaoModel with the deployment I/O of ``options``; the decode stays float32.

    With an FP16 network (the torch CUDA engine) the input is cast after scaling and the raw head
    outputs are widened before the decode, as ``TorchEngine`` always did.
    """

    def __init__(self, model: Any, options: IoOptions) -> None:
        super().__init__()
        self.model = model
        self.options = options

    def forward(self, inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        images = uint8_frames_to_input(inputs) if self.options.input_format == "uint8" else inputs  # (B, 3, H, W)
        network_dtype = next(self.model.parameters()).dtype
        if network_dtype == torch.float32:
            predictions = self.model(images)  # (B, N, No)
        else:
            raw = self.model.features(images.to(network_dtype))  # per level (B, na, H/s, W/s, No)
            predictions = self.model.detect.decode([level.float() for level in raw])  # (B, N, No) float32
        if not self.options.compact:
            return predictions
        return select_candidates(predictions, int(self.options.max_candidates), self.options.candidate_floor)
