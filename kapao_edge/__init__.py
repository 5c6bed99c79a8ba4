"""kapao-edge: deploy KAPAO multi-person pose models (PyTorch, ONNX Runtime, TensorRT).

Heavy pieces (torch, onnxruntime, TensorRT) load on first use, so ``import kapao_edge`` stays cheap and
works on machines that lack the optional ones.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "load_model": "kapao_edge.model",
    "build_model": "kapao_edge.model",
    "predict_tta": "kapao_edge.model",
    "letterbox": "kapao_edge.data",
    "PostprocessConfig": "kapao_edge.postprocess",
    "Poses": "kapao_edge.postprocess",
    "postprocess": "kapao_edge.postprocess",
    "Preset": "kapao_edge.presets",
    "get_preset": "kapao_edge.presets",
    "KapaoEdgeError": "kapao_edge.errors",
    "load_engine": "kapao_edge.engines",
    "PosePipeline": "kapao_edge.runtime",
    "PoseResult": "kapao_edge.runtime",
    "PoseTracker": "kapao_edge.runtime.tracker",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'kapao_edge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover
    from kapao_edge.data import letterbox
    from kapao_edge.engines import load_engine
    from kapao_edge.runtime import PosePipeline, PoseResult
    from kapao_edge.runtime.tracker import PoseTracker
    from kapao_edge.errors import KapaoEdgeError
    from kapao_edge.model import build_model, load_model, predict_tta
    from kapao_edge.postprocess import Poses, PostprocessConfig, postprocess
    from kapao_edge.presets import Preset, get_preset
