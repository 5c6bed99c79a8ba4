"""The PyTorch reference as an engine (CPU or CUDA, FP32 or FP16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kapao_edge.engines.base import Engine, EngineMetadata
from kapao_edge.errors import EngineError, InputError


def metadata_for_model(model: Any, *, precision: str = "fp32", source_sha256: str | None = None) -> EngineMetadata:
    """Engine metadata of an in-memory KapaoModel: any batch and any size (multiples of 64)."""
    from kapao_edge import __version__

    return EngineMetadata(
        preset=model.preset.name,
        num_keypoints=model.num_keypoints,
        strides=[int(s) for s in model.stride.tolist()],
        anchors=[list(map(float, level)) for level in model.config["anchors"]],
        input_shape=["batch", 3, "height", "width"],
        precision=precision,
        model_name=model.config.get("name"),
        source_sha256=source_sha256,
        package_version=__version__,
        postprocess=dict(getattr(model, "postprocess", None) or {}),
    )


class TorchEngine(Engine):
    backend = "torch"

    def __init__(self, model: Any, *, device: str = "cpu", precision: str = "fp32", source_sha256: str | None = None):
        import torch

        if precision not in ("fp32", "fp16"):
            raise InputError(f"the torch backend runs fp32 or fp16, not {precision!r}")
        super().__init__(metadata_for_model(model, precision=precision, source_sha256=source_sha256))
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.to(self.device).eval()
        if precision == "fp16":
            # Network in FP16, decode in FP32: boxes, keypoints and scores share one tensor, and FP16
            # rounding of pixel coordinates (0.5 px steps above 1024) would move keypoints.
            self.model.half()
            self.model.detect.anchor_grid = self.model.detect.anchor_grid.float()

    def _forward(self, batch: Any) -> Any:
        if self.model is None:
            raise EngineError("this engine is closed")
        if not batch.dtype.is_floating_point or batch.element_size() == 4:
            return self.model(batch)  # (B, N, No) FP32 end to end
        raw = self.model.features(batch)  # per level (B, na, H, W, No), FP16
        return self.model.detect.decode([level.float() for level in raw])  # (B, N, No) FP32

    def _infer(self, images: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = torch.from_numpy(images).to(self.device, self.dtype)  # (B, 3, H, W)
            predictions = self._forward(batch)  # (B, N, No)
            return predictions.float().cpu().numpy()

    def infer_stages(self, images: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
        """Predictions and seconds per stage: h2d / infer / d2h on CUDA (synchronised), infer on CPU."""
        import time

        import torch

        images = self.validate_input(images)
        on_gpu = self.device.type == "cuda"
        sync = torch.cuda.synchronize if on_gpu else (lambda *_: None)
        with torch.inference_mode():
            t0 = time.perf_counter()
            batch = torch.from_numpy(images).to(self.device, self.dtype)  # (B, 3, H, W)
            sync()
            t1 = time.perf_counter()
            predictions = self._forward(batch)  # (B, N, No)
            sync()
            t2 = time.perf_counter()
            result = predictions.float().cpu().numpy()
            t3 = time.perf_counter()
        stages = {"h2d": t1 - t0, "infer": t2 - t1, "d2h": t3 - t2} if on_gpu else {"infer": t3 - t0}
        return np.ascontiguousarray(result, dtype=np.float32), stages

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


def load(path: str | Path, *, device: str = "cpu", precision: str = "fp32", preset: str | None = None, **_: Any) -> TorchEngine:
    """Open a checkpoint (official KAPAO, kapao-edge, or a bundled model name) as an engine."""
    from kapao_edge.model import load_model
    from kapao_edge.utils.io import sha256_file

    model = load_model(path, device=device, fuse=True, preset=preset)
    digest = sha256_file(path) if Path(path).is_file() else None
    return TorchEngine(model, device=device, precision=precision, source_sha256=digest)
