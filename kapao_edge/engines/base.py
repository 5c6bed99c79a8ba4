"""The contract every backend honours (Polygraphy-style: one runner interface, many backends).

An engine takes letterboxed frames in the format its metadata declares (float (B, 3, H, W) RGB in
[0, 1], or uint8 (B, H, W, 3) BGR) and returns decoded rows as the PyTorch reference does: every row
(B, N, No), or the compact candidates (B, K, No) plus their count (see ``kapao_edge.model.io``).
Everything around it (pre-processing, post-processing, evaluation, benchmarking) is shared and
backend-agnostic, and uses only what this base class declares.
"""

from __future__ import annotations

import abc
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kapao_edge.errors import EngineError, InputError
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
    # Deployment I/O (kapao_edge.model.io.IoOptions): "float" or "uint8" input; K compact rows or None.
    input_format: str = "float"
    max_candidates: int | None = None
    candidate_floor: float | None = None
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

    @property
    def documented_imgsz(self) -> int | tuple[int, int] | None:
        """The input size the model documents (export records it; a trained checkpoint's ``imgsz``), or None.

        The default size everywhere (CLI and ``PosePipeline``): the documented size, then the fixed
        shape, then 640, so nobody runs a model at a size it was not made for by accident."""
        size = self.extra.get("imgsz")
        if isinstance(size, (list, tuple)) and len(size) == 2:
            return int(size[0]) if int(size[0]) == int(size[1]) else (int(size[0]), int(size[1]))
        return int(size) if isinstance(size, (int, float)) and size > 0 else None

    @property
    def compact(self) -> bool:
        return self.max_candidates is not None

    def graph_input_shape(self) -> list[int | str]:
        """The graph's input shape: [B, 3, H, W] for float input, [B, H, W, 3] for uint8."""
        batch, channels, height, width = self.input_shape
        return [batch, height, width, channels] if self.input_format == "uint8" else list(self.input_shape)

    def describe_io(self) -> str:
        """One line a user can check a file against: what goes in, what comes out."""
        shape = ", ".join(str(d) for d in self.graph_input_shape())
        source = "uint8 BGR" if self.input_format == "uint8" else "float32 RGB [0, 1]"
        if self.compact:
            target = (
                f"predictions ({self.input_shape[0]}, {self.max_candidates}, No) + num_candidates: the "
                f"{self.max_candidates} rows of highest objectness above {self.candidate_floor:g}"
            )
        else:
            target = "predictions (B, N, No): every row"
        return f"images {source} ({shape}) -> {target}"

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
        metadata = cls(**kwargs)
        metadata.io_options()  # an unknown format or a bad K fails on load, not mid-stream
        return metadata

    def io_options(self) -> Any:
        from kapao_edge.io_options import DEFAULT_CANDIDATE_FLOOR, IoOptions

        floor = DEFAULT_CANDIDATE_FLOOR if self.candidate_floor is None else self.candidate_floor
        return IoOptions(self.input_format, self.max_candidates, floor)


def expected_num_rows(height: int, width: int, strides=(8, 16, 32, 64), num_anchors: int = 3) -> int:
    """N of the prediction tensor for an (H, W) input: anchors x cells summed over the levels."""
    return num_anchors * sum((height // s) * (width // s) for s in strides)


@dataclass
class EngineOutput:
    """What one engine run returns: decoded rows, and for compact files how many were above the floor."""

    predictions: np.ndarray  # (B, R, No) float32: R = N (full output) or K (compact)
    num_candidates: np.ndarray | None = None  # (B,) rows above the floor before selection; None = full
    stages: dict[str, float] = field(default_factory=dict)  # seconds per stage, when timed

    def dropped(self, max_candidates: int | None) -> np.ndarray:
        """(B,) candidate rows that did not fit in K: non-zero means poses may be missing."""
        if self.num_candidates is None or max_candidates is None:
            return np.zeros(len(self.predictions), dtype=np.int64)
        return np.maximum(self.num_candidates.astype(np.int64) - int(max_candidates), 0)


class Engine(abc.ABC):
    """One backend behind one contract: ``engine.run(inputs) -> EngineOutput``; a context manager.

    ``engine(inputs)`` is the predictions array alone. Backends implement ``_run``; timing, the
    device, the I/O description and device-side letterboxing are declared here so the pipeline and
    ``bench`` never probe for methods.
    """

    backend: str = "abstract"

    def __init__(self, metadata: EngineMetadata) -> None:
        self.metadata = metadata

    @property
    def preset(self) -> Preset:
        return self.metadata.preset_obj

    @property
    def device(self) -> str:
        """Where the network runs: "cpu", "cuda", "cuda:1" ..."""
        return "cpu"

    @property
    def input_format(self) -> str:
        return self.metadata.input_format

    def describe_io(self) -> str:
        return self.metadata.describe_io()

    @abc.abstractmethod
    def _run(self, inputs: np.ndarray, *, timed: bool) -> EngineOutput:
        """Run validated inputs; with ``timed``, fill ``stages`` (synchronised: h2d / infer / d2h on a GPU)."""

    def run(self, inputs: np.ndarray, *, timed: bool = False) -> EngineOutput:
        output = self._run(self.validate_input(inputs), timed=timed)
        output.predictions = np.ascontiguousarray(output.predictions, dtype=np.float32)
        return output

    def __call__(self, inputs: np.ndarray) -> np.ndarray:
        return self.run(inputs).predictions

    @property
    def letterboxes_on_device(self) -> bool:
        """True when ``run_frames`` letterboxes original frames on the engine's device."""
        return False

    def run_frames(self, frames: list[np.ndarray], input_hw: tuple[int, int], *, auto: bool, timed: bool = False) -> tuple[EngineOutput, list[Any]]:
        """Original BGR frames -> (output, one LetterboxInfo per frame), letterboxed on the device."""
        raise EngineError(f"the {self.backend} engine does not letterbox on its device; letterbox on the host")

    def validate_input(self, images: Any) -> np.ndarray:
        """Reject what the network would silently misread: wrong rank, layout, dtype or size."""
        uint8 = self.input_format == "uint8"
        expected = "uint8 frames shaped (B, H, W, 3), BGR" if uint8 else "float32 images shaped (B, 3, H, W), RGB in [0, 1]"
        if not isinstance(images, np.ndarray):
            raise InputError(f"{self.backend} engine expects a NumPy array of {expected}, got {type(images).__name__}")
        wanted_dtype = np.uint8 if uint8 else np.float32
        if images.dtype != wanted_dtype:
            hint = " (this file takes uint8 frames: skip the float conversion)" if uint8 else (
                " (this file takes float input: export with --input uint8 for uint8 frames)"
            )
            raise InputError(f"{self.backend} engine expects {expected}, got dtype {images.dtype}{hint}")
        if uint8:
            if images.ndim != 4 or images.shape[3] != 3:
                raise InputError(f"{self.backend} engine expects {expected}, got shape {images.shape}")
            batch, height, width, _ = images.shape
        else:
            if images.ndim != 4 or images.shape[1] != 3:
                raise InputError(f"{self.backend} engine expects {expected}, got shape {images.shape}")
            batch, _, height, width = images.shape
        self._check_shape(batch, height, width)
        return np.ascontiguousarray(images)

    def _check_shape(self, batch: int, height: int, width: int) -> None:
        """Batch and size against the multiple-of-64 rule and a fixed-shape file."""
        if batch < 1:
            raise InputError("empty batch: at least one image is needed")
        if height % MAX_STRIDE or width % MAX_STRIDE:
            raise InputError(f"input height and width must be multiples of {MAX_STRIDE}, got {height}x{width}")
        fixed_b, _, fixed_h, fixed_w = self.metadata.input_shape
        if isinstance(fixed_b, int) and batch != fixed_b:
            raise InputError(f"this engine was built for batch {fixed_b}, got {batch}")
        if isinstance(fixed_h, int) and isinstance(fixed_w, int) and (height, width) != (fixed_h, fixed_w):
            raise InputError(f"this engine was built for {fixed_h}x{fixed_w} inputs, got {height}x{width}")

    def close(self) -> None:
        """Free backend resources (device memory, sessions); safe to call twice."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
