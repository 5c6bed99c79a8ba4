"""Image in, poses out: letterbox -> engine -> post-processing, shared by predict, val and demo."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kapao_edge.data import LetterboxInfo, prepare
from kapao_edge.engines.base import Engine
from kapao_edge.postprocess import Poses, PostprocessConfig, postprocess


@dataclass
class PoseResult:
    poses: Poses
    letterbox: LetterboxInfo


class PosePipeline:
    """Runs one engine on original BGR images and returns poses in original-image pixels.

    Engines with dynamic H/W get the official demo letterbox (``auto=True``: the smallest padding to a
    multiple of 64); fixed-shape engines (a static ONNX or TensorRT plan) get their exact input shape.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        imgsz: int | tuple[int, int] | None = None,
        config: PostprocessConfig | None = None,
        postprocess_backend: str = "auto",
    ) -> None:
        self.engine = engine
        fixed_hw = engine.metadata.default_hw
        self.auto = fixed_hw is None
        self.imgsz = fixed_hw if fixed_hw is not None else (imgsz or 640)
        self.config = config or PostprocessConfig.named("demo", engine.metadata.postprocess)
        self.postprocess_backend = postprocess_backend

    @property
    def preset(self):
        return self.engine.preset

    def __call__(self, image_bgr: np.ndarray) -> PoseResult:
        chw, info = prepare(image_bgr, self.imgsz, auto=self.auto)  # (3, H, W)
        predictions = self.engine(chw[None])  # (1, N, No)
        poses = postprocess(
            predictions, info.input_hw, [info.original_hw], self.config, backend=self.postprocess_backend
        )[0]
        return PoseResult(poses=poses, letterbox=info)


def image_id_for(name: str, fallback: int) -> int:
    """COCO image id from a file name such as ``000000000785.jpg`` (785), else ``fallback``."""
    stem = name.rsplit(".", 1)[0]
    return int(stem) if stem.isdigit() else fallback
