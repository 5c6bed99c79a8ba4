"""Post-processing settings and results, shared by the NumPy reference and the C++ core."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from kapao_edge.errors import InputError

Compat = Literal["default", "official"]
COMPAT_MODES: tuple[str, ...] = ("default", "official")
PRESET_NAMES: tuple[str, ...] = ("val", "demo")  # PostprocessConfig.named(...)

_THRESHOLDS = ("conf_thres", "iou_thres", "conf_thres_kp", "iou_thres_kp", "conf_thres_kp_person")
_COUNTS = ("max_det", "max_nms")


@dataclass(frozen=True)
class PostprocessConfig:
    """Thresholds for NMS and keypoint-object fusion.

    ``compat="official"`` reproduces the official val.py output bit for bit, clipping quirk included;
    ``compat="default"`` fuses on unclipped coordinates and clips every keypoint at the end (see
    ``kapao_edge.postprocess.reference``). The defaults are the official validation values.
    """

    conf_thres: float = 0.001  # person and (combined NMS) keypoint-object candidates
    iou_thres: float = 0.65  # person NMS
    conf_thres_kp: float = 0.2  # keypoint-object candidates
    iou_thres_kp: float = 0.25  # keypoint-object NMS
    conf_thres_kp_person: float = 0.3  # persons below this take no part in fusion
    overwrite_tol: float = 50.0  # pixels in the original image
    max_det: int = 300  # per NMS run and image
    max_nms: int = 30000  # candidates entering NMS per run and image
    use_kp_dets: bool = True  # fuse keypoint objects into poses
    compat: Compat = "default"

    def __post_init__(self) -> None:
        for name in _THRESHOLDS:
            value = _as_float(name, getattr(self, name))
            if not 0.0 <= value <= 1.0:
                raise InputError(f"{name} must be in [0, 1], got {value}")
            object.__setattr__(self, name, value)
        tolerance = _as_float("overwrite_tol", self.overwrite_tol)
        if tolerance < 0:
            raise InputError(f"overwrite_tol must be >= 0 pixels, got {tolerance}")
        object.__setattr__(self, "overwrite_tol", tolerance)
        for name in _COUNTS:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise InputError(f"{name} must be a positive int, got {value!r}")
            object.__setattr__(self, name, int(value))
        if not isinstance(self.use_kp_dets, (bool, np.bool_)):
            raise InputError(f"use_kp_dets must be True or False, got {self.use_kp_dets!r}")
        object.__setattr__(self, "use_kp_dets", bool(self.use_kp_dets))
        if self.compat not in COMPAT_MODES:
            raise InputError(f"compat must be one of {', '.join(COMPAT_MODES)}, got {self.compat!r}")

    @classmethod
    def official_val(cls, **changes: Any) -> PostprocessConfig:
        """The official val.py settings (the ones behind the published AP)."""
        return cls(**{**dict(conf_thres=0.001, iou_thres=0.65, conf_thres_kp=0.2, iou_thres_kp=0.25,
                             conf_thres_kp_person=0.3, overwrite_tol=50.0), **changes})

    @classmethod
    def official_demo(cls, **changes: Any) -> PostprocessConfig:
        """The official image-demo settings: fewer, surer poses."""
        return cls(**{**dict(conf_thres=0.7, iou_thres=0.45, conf_thres_kp=0.5, iou_thres_kp=0.45,
                             conf_thres_kp_person=0.2, overwrite_tol=25.0), **changes})

    @classmethod
    def named(
        cls, thresholds: str, recommended: Mapping[str, Any] | None = None, **overrides: Any
    ) -> PostprocessConfig:
        """A preset (``"val"`` or ``"demo"``), then the values the model file recommends, then the
        caller's overrides (``None`` means not given): the most specific choice wins.

        A model trained on other data may need other values than the official ones (a bundled model
        for small scenes fuses keypoint objects over a shorter distance); its file says so and every
        command picks that up, while an official checkpoint, which recommends nothing, keeps the
        official behaviour.
        """
        if thresholds not in PRESET_NAMES:
            raise InputError(f"thresholds must be one of {', '.join(PRESET_NAMES)}, got {thresholds!r}")
        preset = cls.official_val() if thresholds == "val" else cls.official_demo()
        config = preset.replace(**dict(recommended or {}))
        return config.replace(**{key: value for key, value in overrides.items() if value is not None})

    def replace(self, **changes: Any) -> PostprocessConfig:
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InputError(f"unknown post-processing option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def combined_nms(self) -> bool:
        """One NMS run over all classes does the work of two (official val.run_nms shortcut)."""
        return self.iou_thres == self.iou_thres_kp and self.conf_thres_kp >= self.conf_thres


def check_recommended(values: Any, *, source: str) -> dict[str, Any]:
    """The post-processing values a model file recommends, checked like user input, so a bad file
    fails when it is opened and the message names it."""
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        raise InputError(f"{source}: recommended post-processing must be a mapping, got {type(values).__name__}")
    try:
        config = PostprocessConfig().replace(**dict(values))
    except (InputError, TypeError) as exc:
        raise InputError(f"{source}: bad recommended post-processing: {exc}") from None
    return {name: getattr(config, name) for name in values}


def format_values(values: Mapping[str, Any]) -> str:
    """``name=value, ...`` for messages (numbers without trailing zeros)."""
    return ", ".join(f"{key}={value:g}" if isinstance(value, float) else f"{key}={value}"
                     for key, value in values.items())


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InputError(f"{name} must be finite, got {value}")
    return value


@dataclass(frozen=True, eq=False)
class Poses:
    """Poses found in one image, in the original image's pixel coordinates, best score first."""

    keypoints: np.ndarray  # (P, K, 3) float32: x, y, confidence (0 where no keypoint object was fused)
    boxes: np.ndarray  # (P, 4) float32 person boxes x1, y1, x2, y2
    scores: np.ndarray  # (P,) float32 person confidence
    # (P,) int64 persistent person ids from a tracker, -1 where none is shown yet; None when untracked
    ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        count = len(self.scores)
        if (
            self.keypoints.ndim != 3 or self.keypoints.shape[0] != count or self.keypoints.shape[2] != 3
            or self.boxes.shape != (count, 4) or self.scores.ndim != 1
        ):
            raise InputError(
                f"inconsistent Poses shapes: keypoints {self.keypoints.shape}, boxes {self.boxes.shape}, "
                f"scores {self.scores.shape}"
            )
        if self.ids is not None and np.shape(self.ids) != (count,):
            raise InputError(f"inconsistent Poses shapes: ids {np.shape(self.ids)} for {count} poses")

    def with_ids(self, ids: np.ndarray) -> Poses:
        """The same poses carrying tracker ids (P,), e.g. ``poses.with_ids(tracker.update(poses))``."""
        return dataclasses.replace(self, ids=np.asarray(ids, np.int64))

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @property
    def num_keypoints(self) -> int:
        return int(self.keypoints.shape[1])

    @classmethod
    def empty(cls, num_keypoints: int) -> Poses:
        return cls(
            keypoints=np.zeros((0, num_keypoints, 3), np.float32),
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
        )
