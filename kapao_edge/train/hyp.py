"""Training hyper-parameters: the official KAPAO-P6 values (hyp.kp-p6.yaml) as one frozen record.

The loss gains stored here are the yaml's; ``LossGains.scaled`` applies the official rescaling for
the number of output levels, classes and the input size, so callers never rescale by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from kapao_edge.errors import InputError


@dataclass(frozen=True)
class LossGains:
    box: float
    obj: float
    cls: float
    kp: float

    @classmethod
    def scaled(cls, hyp: "Hyp", num_levels: int, num_classes: int, imgsz: int) -> "LossGains":
        """Gains as the official trainer uses them: per-level averaging, class count and image area."""
        per_level = 3.0 / num_levels
        return cls(
            box=hyp.box * per_level,
            obj=hyp.obj * (imgsz / 640) ** 2 * per_level,
            cls=hyp.cls * num_classes / 80.0 * per_level,
            kp=hyp.kp * per_level,
        )


@dataclass(frozen=True)
class Hyp:
    # optimisation
    lr0: float = 0.01  # SGD; AdamW runs use ADAMW_LR0 unless told otherwise
    lrf: float = 0.2  # final lr = lr0 * lrf at the end of the cosine
    momentum: float = 0.937  # SGD momentum / AdamW beta1
    weight_decay: float = 0.0005  # for a batch of nominal_batch_size images
    warmup_epochs: float = 3.0
    warmup_momentum: float = 0.8
    warmup_bias_lr: float = 0.1
    # loss
    box: float = 0.05
    cls: float = 0.3
    obj: float = 0.7
    kp: float = 0.025
    anchor_t: float = 4.0  # a target matches an anchor when neither side ratio exceeds this
    # augmentation
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    degrees: float = 0.0
    translate: float = 0.1
    scale: float = 0.9
    fliplr: float = 0.5
    mosaic: float = 1.0
    kp_bbox: float = 0.05  # keypoint-object box side, as a fraction of the longest image side

    def updated(self, **changes: Any) -> "Hyp":
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InputError(f"unknown hyper-parameter(s): {', '.join(unknown)}")
        return replace(self, **{k: float(v) for k, v in changes.items()})

    def without_augmentation(self) -> "Hyp":
        """Same optimisation and loss settings, every random image transform switched off."""
        return replace(self, hsv_h=0.0, hsv_s=0.0, hsv_v=0.0, degrees=0.0, translate=0.0, scale=0.0,
                       fliplr=0.0, mosaic=0.0)


ADAMW_LR0 = 0.001  # the official comment: SGD 1e-2, Adam 1e-3
