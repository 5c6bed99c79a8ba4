"""Inference backends behind one contract (see ``base.Engine``).

Each backend module imports its heavy dependency inside ``load``, so listing or choosing backends
never imports torch-cuda, onnxruntime or TensorRT.
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from kapao_edge.engines.base import Engine, EngineMetadata, EngineOutput, expected_num_rows
from kapao_edge.errors import EngineError, InputError

# backend name -> (module, loader function)
_BACKENDS = {
    "torch": ("kapao_edge.engines.torch_backend", "load"),
    "onnxruntime": ("kapao_edge.engines.onnxruntime_backend", "load"),
    "tensorrt": ("kapao_edge.engines.tensorrt_backend", "load"),  # says plainly when TensorRT is missing
}

_SUFFIX_BACKEND = {".pt": "torch", ".pth": "torch", ".onnx": "onnxruntime", ".engine": "tensorrt", ".plan": "tensorrt"}


def backend_for_path(path: str | Path) -> str:
    """The backend a file's suffix names; a bare bundled-model name ("bundled") is a torch checkpoint."""
    suffix = Path(path).suffix.lower()
    if not suffix and not Path(path).exists():
        from kapao_edge.model.checkpoint import list_assets

        if str(path) in list_assets():
            return "torch"
    if suffix not in _SUFFIX_BACKEND:
        known = ", ".join(sorted(_SUFFIX_BACKEND))
        raise InputError(f"cannot tell the backend of {path}: expected one of {known}")
    return _SUFFIX_BACKEND[suffix]


def load_engine(path: str | Path, *, backend: str | None = None, **options) -> Engine:
    """Open a model file (or a bundled model name) with the backend its suffix (or ``backend``) names.

    Options are the backend loader's keyword arguments; one it does not take is refused, so a typo
    never silently runs with defaults. Options given as None mean "not given".
    """
    backend = backend or backend_for_path(path)
    if backend not in _BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(_BACKENDS)}")
    module_name, function = _BACKENDS[backend]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineError(f"the {backend} backend is not available: {exc}") from None
    loader = getattr(module, function)
    given = {name: value for name, value in options.items() if value is not None}
    accepted = [name for name in inspect.signature(loader).parameters if name != "path"]
    unknown = sorted(set(given) - set(accepted))
    if unknown:
        raise InputError(
            f"the {backend} backend takes no option {', '.join(unknown)}; it takes: {', '.join(accepted) or 'none'}"
        )
    return loader(path, **given)


__all__ = ["Engine", "EngineMetadata", "EngineOutput", "expected_num_rows", "load_engine", "backend_for_path"]
