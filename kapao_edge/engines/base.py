"""The contract every backend honours (Polygraphy-style: one runner interface, many backends).

An engine takes letterboxed images (B, 3, H, W) float32 RGB in [0, 1] and returns decoded predictions
(B, N, No) float32 exactly as the PyTorch reference does; everything around it (pre-processing,
post-processing, evaluation, benchmarking) is shared and backend-agnostic.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kapao_edge.errors import InputError
from kapao_edge.postprocess.config import check_recommended
from kapao_edge.presets import Preset, get_preset

MAX_STRIDE = 64


@dataclass
class EngineMetadata:
    """What a deployed model file must tell its user (stored in ONNX metadata_props / plan sidecars)."""

    preset: str
    num_keypoints: int
    strides: list[int]
    anchors: list[list[float]]  # per level, flat pixel (w, h) pairs
    input_shape: list[int | str]  # [B, 3, H, W]; a str names a dynamic axis
    precision: str = "fp32"
    model_name: str | None = None
    source_sha256: str | None = None
    calibration: dict[str, Any] | None = None
    package_version: str | None = None
    # Post-processing values the model was tuned with (PostprocessConfig fields, e.g. overwrite_tol);
    # they replace the preset's values unless the user gives their own. Empty for official models.
    postprocess: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def preset_obj(self) -> Preset:
        return get_preset(self.preset)

    @property
    def dynamic_batch(self) -> bool:
        return not isinstance(self.input_shape[0], int)

    @property
    def dynamic_hw(self) -> bool:
        return not (isinstance(self.input_shape[2], int) and isinstance(self.input_shape[3], int))

    @property
    def default_hw(self) -> tuple[int, int] | None:
        """The fixed input size, or None when H and W are dynamic."""
        h, w = self.input_shape[2], self.input_shape[3]
        return (h, w) if isinstance(h, int) and isinstance(w, int) else None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EngineMetadata":
        known = {f for f in cls.__dataclass_fields__}
        missing = {"preset", "num_keypoints", "strides", "anchors", "input_shape"} - set(data)
        if missing:
            raise InputError(f"engine metadata lacks {', '.join(sorted(missing))}")
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs.setdefault("extra", {}).update({k: v for k, v in data.items() if k not in known})
        kwargs["postprocess"] = check_recommended(kwargs.get("postprocess"), source="engine metadata")
        return cls(**kwargs)


def expected_num_rows(height: int, width: int, strides=(8, 16, 32, 64), num_anchors: int = 3) -> int:
    """N of the prediction tensor for an (H, W) input: anchors x cells summed over the levels."""
    return num_anchors * sum((height // s) * (width // s) for s in strides)


class Engine(abc.ABC):
    """One backend behind one contract: ``engine(images) -> predictions``; a context manager."""

    backend: str = "abstract"

    def __init__(self, metadata: EngineMetadata) -> None:
        self.metadata = metadata

    @property
    def preset(self) -> Preset:
        return self.metadata.preset_obj

    @abc.abstractmethod
    def _infer(self, images: np.ndarray) -> np.ndarray:
        """Run the network on validated input (B, 3, H, W) float32 -> (B, N, No) float32."""

    def __call__(self, images: np.ndarray) -> np.ndarray:
        images = self.validate_input(images)
        predictions = self._infer(images)  # (B, N, No)
        return np.ascontiguousarray(predictions, dtype=np.float32)

    def validate_input(self, images: Any) -> np.ndarray:
        """Reject what the network would silently misread: wrong rank, channels, dtype or size."""
        if not isinstance(images, np.ndarray):
            raise InputError(f"{self.backend} engine expects a NumPy array, got {type(images).__name__}")
        if images.dtype != np.float32:
            raise InputError(
                f"{self.backend} engine expects float32 images in [0, 1], got dtype {images.dtype}"
            )
        if images.ndim != 4 or images.shape[1] != 3:
            raise InputError(f"{self.backend} engine expects images shaped (B, 3, H, W), got {images.shape}")
        batch, _, height, width = images.shape
        if batch < 1:
            raise InputError("empty batch: at least one image is needed")
        if height % MAX_STRIDE or width % MAX_STRIDE:
            raise InputError(f"input height and width must be multiples of {MAX_STRIDE}, got {height}x{width}")
        fixed_b, _, fixed_h, fixed_w = self.metadata.input_shape
        if isinstance(fixed_b, int) and batch != fixed_b:
            raise InputError(f"this engine was built for batch {fixed_b}, got {batch}")
        if isinstance(fixed_h, int) and isinstance(fixed_w, int) and (height, width) != (fixed_h, fixed_w):
            raise InputError(f"this engine was built for {fixed_h}x{fixed_w} inputs, got {height}x{width}")
        return np.ascontiguousarray(images)

    def close(self) -> None:
        """Free backend resources (device memory, sessions); safe to call twice."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
