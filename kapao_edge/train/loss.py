"""The KAPAO training loss: YOLOv5 target assignment plus a keypoint term for pose objects.

Targets are matched to every anchor whose shape is within ``anchor_t`` of theirs (both side ratios),
in their own grid cell and in the two nearest neighbouring cells, on every output level. Terms:
CIoU box loss, objectness BCE against the (detached) IoU, class BCE, and for pose objects the mean
Euclidean distance between decoded keypoint offsets and the labelled ones (visible keypoints only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from kapao_edge.train.hyp import LossGains

LOSS_NAMES = ("box", "obj", "cls", "kp")
LEVEL_BALANCE = (4.0, 1.0, 0.25, 0.06, 0.02)  # objectness weight per level, P3 first
NEIGHBOUR_MARGIN = 0.5  # a target this close to a cell edge is also assigned across that edge

# Cell offsets, in units of NEIGHBOUR_MARGIN: own cell, left, up, right, down.
_OFFSETS = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], dtype=torch.float32) * NEIGHBOUR_MARGIN


@dataclass
class LevelTargets:
    """The positives of one output level, one row per (target, anchor, cell) assignment."""

    image: torch.Tensor  # (n,) batch index
    anchor: torch.Tensor  # (n,) anchor index
    grid_y: torch.Tensor  # (n,)
    grid_x: torch.Tensor  # (n,)
    cls: torch.Tensor  # (n,) class index
    box: torch.Tensor  # (n, 4) centre relative to the cell corner, and size, in grid units
    keypoints: torch.Tensor  # (n, K, 3) x, y relative to the cell corner in grid units, and v
    anchor_wh: torch.Tensor  # (n, 2) matched anchor in grid units


def build_targets(
    targets: torch.Tensor,
    grid_shapes: list[tuple[int, int]],
    anchors: torch.Tensor,
    anchor_t: float,
) -> list[LevelTargets]:
    """Assign ``targets`` (M, 6 + 3K) ``[image, cls, cx, cy, w, h, kx, ky, kv, ...]`` (normalised)
    to anchors and cells of each level; ``anchors`` (nl, na, 2) in grid units, ``grid_shapes`` (H, W).
    """
    device = targets.device
    num_anchors = anchors.shape[1]
    num_targets, width = targets.shape
    num_keypoints = (width - 6) // 3
    anchor_index = torch.arange(num_anchors, device=device).view(num_anchors, 1).expand(num_anchors, num_targets)
    offsets = _OFFSETS.to(device)

    levels = []
    for level, (grid_h, grid_w) in enumerate(grid_shapes):
        to_grid = torch.ones(width, device=device)
        to_grid[[2, 4]] = grid_w
        to_grid[[3, 5]] = grid_h
        to_grid[6::3] = grid_w
        to_grid[7::3] = grid_h
        scaled = targets * to_grid  # (M, C)
        level_anchors = anchors[level].to(device)  # (na, 2)

        # Anchor filter: neither the width nor the height ratio may exceed anchor_t.
        ratio = scaled[None, :, 4:6] / level_anchors[:, None, :]  # (na, M, 2)
        matched = torch.maximum(ratio, 1.0 / ratio).amax(dim=2) < anchor_t  # (na, M)
        rows = scaled[None].expand(num_anchors, -1, -1)[matched]  # (n0, C)
        anchor_ids = anchor_index[matched]  # (n0,)

        # Neighbouring cells: the nearer horizontal and the nearer vertical neighbour, unless on the border.
        grid_xy = rows[:, 2:4]  # (n0, 2)
        from_far_edge = torch.tensor([grid_w, grid_h], device=device, dtype=rows.dtype) - grid_xy
        near_low = ((grid_xy % 1.0 < NEIGHBOUR_MARGIN) & (grid_xy > 1.0)).T  # (2, n0): left, up
        near_high = ((from_far_edge % 1.0 < NEIGHBOUR_MARGIN) & (from_far_edge > 1.0)).T  # (2, n0): right, down
        use = torch.stack([torch.ones_like(near_low[0]), near_low[0], near_low[1], near_high[0], near_high[1]])  # (5, n0)
        rows = rows[None].expand(5, -1, -1)[use]  # (n, C)
        anchor_ids = anchor_ids[None].expand(5, -1)[use]  # (n,)
        shift = offsets[:, None, :].expand(-1, use.shape[1], -1)[use]  # (n, 2)

        cell = (rows[:, 2:4] - shift).long()  # (n, 2) x, y
        cell[:, 0].clamp_(0, grid_w - 1)
        cell[:, 1].clamp_(0, grid_h - 1)
        keypoints = rows[:, 6:].reshape(len(rows), num_keypoints, 3)  # (n, K, 3)
        visible = keypoints[..., 2:] > 0  # (n, K, 1)
        relative_xy = keypoints[..., :2] - cell[:, None, :].to(keypoints.dtype)
        keypoints = torch.cat([torch.where(visible, relative_xy, 0.0), keypoints[..., 2:]], dim=-1)
        levels.append(LevelTargets(
            image=rows[:, 0].long(),
            anchor=anchor_ids,
            grid_y=cell[:, 1],
            grid_x=cell[:, 0],
            cls=rows[:, 1].long(),
            box=torch.cat([rows[:, 2:4] - cell, rows[:, 4:6]], dim=1),
            keypoints=keypoints,
            anchor_wh=level_anchors[anchor_ids],
        ))
    return levels


def bbox_ciou(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Complete IoU of matching (n, 4) centre-size boxes: IoU minus centre-distance and shape penalties."""
    p_x1, p_y1 = pred[:, 0] - pred[:, 2] / 2, pred[:, 1] - pred[:, 3] / 2
    p_x2, p_y2 = pred[:, 0] + pred[:, 2] / 2, pred[:, 1] + pred[:, 3] / 2
    t_x1, t_y1 = target[:, 0] - target[:, 2] / 2, target[:, 1] - target[:, 3] / 2
    t_x2, t_y2 = target[:, 0] + target[:, 2] / 2, target[:, 1] + target[:, 3] / 2

    inter = (torch.min(p_x2, t_x2) - torch.max(p_x1, t_x1)).clamp(0) * \
        (torch.min(p_y2, t_y2) - torch.max(p_y1, t_y1)).clamp(0)
    p_w, p_h = p_x2 - p_x1, p_y2 - p_y1 + eps
    t_w, t_h = t_x2 - t_x1, t_y2 - t_y1 + eps
    union = p_w * p_h + t_w * t_h - inter + eps
    iou = inter / union

    enclose_w = torch.max(p_x2, t_x2) - torch.min(p_x1, t_x1)
    enclose_h = torch.max(p_y2, t_y2) - torch.min(p_y1, t_y1)
    diagonal_sq = enclose_w ** 2 + enclose_h ** 2 + eps
    centre_dist_sq = ((t_x1 + t_x2 - p_x1 - p_x2) ** 2 + (t_y1 + t_y2 - p_y1 - p_y2) ** 2) / 4
    shape = (4 / math.pi ** 2) * (torch.atan(t_w / t_h) - torch.atan(p_w / p_h)) ** 2
    with torch.no_grad():
        alpha = shape / (shape - iou + (1 + eps))
    return iou - (centre_dist_sq / diagonal_sq + shape * alpha)


class KapaoLoss:
    """Callable ``(level_outputs, targets) -> (total, components)``.

    ``level_outputs``: the training-mode model output, a list of raw (B, na, H, W, No) tensors.
    ``total`` is multiplied by the batch size, as the official trainer does, so that gradient
    accumulation to a nominal batch keeps the step size; ``components`` (4,) are the per-image terms
    box, obj, cls, kp (detached).
    """

    def __init__(self, anchors: torch.Tensor, num_classes: int, num_keypoints: int, gains: LossGains,
                 anchor_t: float = 4.0) -> None:
        self.anchors = anchors.detach().float()  # (nl, na, 2) grid units
        self.num_classes = num_classes
        self.num_keypoints = num_keypoints
        self.gains = gains
        self.anchor_t = anchor_t
        self.balance = LEVEL_BALANCE[: anchors.shape[0]]
        self.bce = nn.BCEWithLogitsLoss()

    def __call__(self, outputs: list[torch.Tensor], targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        device = outputs[0].device
        targets = targets.to(device=device, dtype=torch.float32)
        box_loss = torch.zeros((), device=device)
        obj_loss = torch.zeros((), device=device)
        cls_loss = torch.zeros((), device=device)
        kp_loss = torch.zeros((), device=device)
        grid_shapes = [(int(out.shape[2]), int(out.shape[3])) for out in outputs]
        assigned = build_targets(targets, grid_shapes, self.anchors, self.anchor_t)
        first_kp = 5 + self.num_classes

        for level, (out, tgt) in enumerate(zip(outputs, assigned)):
            out = out.float()  # (B, na, H, W, No); the loss runs in float32 under autocast too
            obj_target = torch.zeros_like(out[..., 4])  # (B, na, H, W)
            if len(tgt.image):
                picked = out[tgt.image, tgt.anchor, tgt.grid_y, tgt.grid_x]  # (n, No)
                pred_xy = picked[:, :2].sigmoid() * 2 - 0.5
                pred_wh = (picked[:, 2:4].sigmoid() * 2) ** 2 * tgt.anchor_wh
                iou = bbox_ciou(torch.cat([pred_xy, pred_wh], dim=1), tgt.box)  # (n,)
                box_loss = box_loss + (1.0 - iou).mean()

                visible = tgt.keypoints[..., 2] > 0  # (n, K)
                if visible.any():
                    pred_kp = picked[:, first_kp:].reshape(len(picked), self.num_keypoints, 2)  # (n, K, 2)
                    pred_kp = (pred_kp.sigmoid() * 4 - 2) * tgt.anchor_wh[:, None, :]
                    distance = torch.linalg.norm(pred_kp[visible] - tgt.keypoints[visible][:, :2], dim=-1)
                    kp_loss = kp_loss + distance.mean()

                obj_target[tgt.image, tgt.anchor, tgt.grid_y, tgt.grid_x] = iou.detach().clamp(0)

                cls_target = torch.zeros_like(picked[:, 5:first_kp])  # (n, nc)
                cls_target[torch.arange(len(tgt.cls), device=device), tgt.cls] = 1.0
                cls_loss = cls_loss + self.bce(picked[:, 5:first_kp], cls_target)
            obj_loss = obj_loss + self.bce(out[..., 4], obj_target) * self.balance[level]

        terms = torch.stack([
            box_loss * self.gains.box,
            obj_loss * self.gains.obj,
            cls_loss * self.gains.cls,
            kp_loss * self.gains.kp,
        ])  # (4,)
        batch_size = outputs[0].shape[0]
        return terms.sum() * batch_size, terms.detach()
