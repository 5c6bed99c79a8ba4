"""Post-processing facade: predictions (B, N, No) -> one ``Poses`` per image.

Two backends implement the same specification: the C++ core (``kapao_edge.postprocess.cpp``, built
with the package) and the NumPy reference. ``backend="auto"`` takes C++ when it is built.
"""

from __future__ import annotations

import warnings
from types import ModuleType
from typing import Any, Literal

import numpy as np

from kapao_edge.errors import InputError
from kapao_edge.postprocess.config import COMPAT_MODES, Poses, PostprocessConfig
from kapao_edge.postprocess.inputs import check_inputs
from kapao_edge.postprocess.reference import non_max_suppression, postprocess_numpy, run_nms

Backend = Literal["auto", "numpy", "cpp"]
BACKENDS: tuple[str, ...] = ("auto", "numpy", "cpp")

FALLBACK_WARNING = "C++ post-processor not built; using the NumPy reference (slower)"
_BUILD_HINT = (
    "the C++ post-processor is not built: reinstall the package from source "
    "(`pip install -e .` with a C++17 compiler and CMake) or pass backend='numpy'"
)
_fallback_warned = False

__all__ = [
    "BACKENDS",
    "COMPAT_MODES",
    "Poses",
    "PostprocessConfig",
    "cpp_available",
    "non_max_suppression",
    "postprocess",
    "postprocess_numpy",
    "run_nms",
]


def _cpp_module() -> ModuleType | None:
    """The C++ binding module when it imports and reports itself usable, else None."""
    try:
        from kapao_edge.postprocess import cpp
    except ImportError:
        return None
    return cpp if cpp.is_available() else None


def cpp_available() -> bool:
    return _cpp_module() is not None


def postprocess(
    predictions: np.ndarray,
    input_hw: tuple[int, int],
    original_hws: Any,
    config: PostprocessConfig | None = None,
    *,
    backend: Backend = "auto",
) -> list[Poses]:
    """Filter, NMS, scale back to each original image and fuse keypoint objects.

    ``predictions`` (B, N, No) float32 (float16 is widened) decoded rows; ``input_hw`` the network
    input (h, w); ``original_hws`` one (h, w) per image, or a single pair for the whole batch.
    """
    global _fallback_warned
    if backend not in BACKENDS:
        raise InputError(f"unknown post-processing backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if config is None:
        config = PostprocessConfig()
    elif not isinstance(config, PostprocessConfig):
        raise InputError(f"config must be a PostprocessConfig, got {type(config).__name__}")
    # float16 stays narrow until a backend needs it wider: the C++ core reads it in place.
    predictions, input_hw, original_hws = check_inputs(predictions, input_hw, original_hws, widen_half=False)

    if backend != "numpy":
        cpp = _cpp_module()
        if cpp is not None:
            return cpp.postprocess_cpp(predictions, input_hw, original_hws, config)
        if backend == "cpp":
            raise InputError(_BUILD_HINT)
        if not _fallback_warned:
            _fallback_warned = True
            warnings.warn(FALLBACK_WARNING, RuntimeWarning, stacklevel=2)
    return postprocess_numpy(predictions.astype(np.float32, copy=False), input_hw, original_hws, config)


class _CallablePackage(ModuleType):
    """Lets ``kapao_edge.postprocess(...)`` work although ``kapao_edge.postprocess`` is this package.

    Importing a subpackage binds its module object to the parent's attribute, which would shadow the
    public function of the same name; making the module callable keeps both spellings valid.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> list[Poses]:
        return postprocess(*args, **kwargs)


import sys as _sys  # noqa: E402

_sys.modules[__name__].__class__ = _CallablePackage
