"""Inference backends behind one contract (see ``base.Engine``).

Each backend module imports its heavy dependency inside ``load``, so listing or choosing backends
never imports torch-cuda, onnxruntime or TensorRT.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from kapao_edge.engines.base import Engine, EngineMetadata, expected_num_rows
from kapao_edge.errors import EngineError, InputError

# backend name -> (module, loader function)
_BACKENDS = {
    "torch": ("kapao_edge.engines.torch_backend", "load"),
    "onnxruntime": ("kapao_edge.engines.onnxruntime_backend", "load"),
    "tensorrt": ("kapao_edge.engines.tensorrt_backend", "load"),  # says plainly when TensorRT is missing
}

_SUFFIX_BACKEND = {".pt": "torch", ".pth": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt"}


def backend_for_path(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIX_BACKEND:
        known = ", ".join(sorted(_SUFFIX_BACKEND))
        raise InputError(f"cannot tell the backend of {path}: expected one of {known}")
    return _SUFFIX_BACKEND[suffix]


def load_engine(path: str | Path, *, backend: str | None = None, **options) -> Engine:
    """Open a model file with the backend its suffix (or ``backend``) names."""
    backend = backend or backend_for_path(path)
    if backend not in _BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(_BACKENDS)}")
    module_name, function = _BACKENDS[backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineError(f"the {backend} backend is not available: {exc}") from None
    return getattr(module, function)(path, **options)


__all__ = ["Engine", "EngineMetadata", "expected_num_rows", "load_engine", "backend_for_path"]
