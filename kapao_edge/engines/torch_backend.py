"""The PyTorch reference as an engine (CPU or CUDA, FP32 or FP16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kapao_edge.engines.base import Engine, EngineMetadata
from kapao_edge.errors import InputError


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
            self.model.half()  # as the official FP16 inference; outputs are returned as float32

    def _infer(self, images: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            batch = torch.from_numpy(images).to(self.device, self.dtype)  # (B, 3, H, W)
            predictions = self.model(batch)  # (B, N, No)
            return predictions.float().cpu().numpy()

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]


def load(path: str | Path, *, device: str = "cpu", precision: str = "fp32", preset: str | None = None, **_: Any) -> TorchEngine:
    """Open a checkpoint (official KAPAO, kapao-edge, or a bundled model name) as an engine."""
    from kapao_edge.model import load_model
    from kapao_edge.utils.io import sha256_file

    model = load_model(path, device=device, fuse=True, preset=preset)
    digest = sha256_file(path) if Path(path).is_file() else None
    return TorchEngine(model, device=device, precision=precision, source_sha256=digest)
