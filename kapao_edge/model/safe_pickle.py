"""An unpickler for official KAPAO checkpoints that never imports or runs code from the file.

Why a custom ``pickle_module`` for ``torch.load`` and not torch's ``weights_only`` mode: an official
checkpoint pickles whole objects (``models.yolo.Model`` holding ``torch.nn`` modules), which
``weights_only`` refuses, and allow-listing them as safe globals would import the official classes
(absent here) or build real ``nn.Module`` objects through their ``__setstate__``. Instead every
allow-listed class or function from the model code resolves to an inert ``Record`` that only keeps
the arguments and state it was given; the model is rebuilt from those records by our own code.

Only a handful of real callables are resolved, each of which builds plain data: torch's tensor and
parameter rebuild helpers, ``OrderedDict``, ``set``/``frozenset``, dtypes and ``_codecs.encode``
(how protocol 2 stores bytes). Any other global raises ``UnsafeCheckpointError`` naming it, before
anything is imported.
"""

from __future__ import annotations

import _codecs
import _compat_pickle
import collections
import pickle
from typing import Any

import torch

from kapao_edge.errors import UnsafeCheckpointError


class Record:
    """Stand-in for a pickled object or call: the qualified name, the arguments, the state."""

    qualname: str = "?"

    args: tuple[Any, ...]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Record:
        # pickle's NEWOBJ calls __new__ only; a call (REDUCE) calls __new__ then __init__
        record = super().__new__(cls)
        record.args = args
        record.state = None
        return record

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"Record({self.qualname})"

    @property
    def attrs(self) -> dict[str, Any]:
        """The pickled ``__dict__`` (for a (dict, slots) state pair, the dict part)."""
        state = self.state
        if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], (dict, type(None))):
            state = state[0]
        return state if isinstance(state, dict) else {}


# Official class paths that become records. Names from every yolov5-era module a KAPAO file can hold.
_RECORD_GLOBALS: frozenset[str] = frozenset(
    [f"models.yolo.{n}" for n in ("Model", "Detect")]
    + [
        f"models.common.{n}"
        for n in (
            "Conv", "DWConv", "Focus", "C3", "Bottleneck", "BottleneckCSP", "SPP", "SPPF", "Concat",
            "Contract", "Expand", "GhostConv", "GhostBottleneck", "C3TR", "C3SPP", "C3Ghost",
        )
    ]
    + [
        # numpy values (e.g. a numpy best_fitness) are never needed: keep them as records
        f"{mod}.{n}"
        for mod in ("numpy.core.multiarray", "numpy._core.multiarray")
        for n in ("_reconstruct", "scalar")
    ]
    + ["numpy.ndarray", "numpy.dtype"]
)

_TORCH_NN_PREFIX = "torch.nn.modules."


def _real_globals() -> dict[str, Any]:
    table: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "_codecs.encode": _codecs.encode,
        "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
        "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
        "torch.Size": torch.Size,
    }
    for name in dir(torch):
        value = getattr(torch, name, None)
        if isinstance(value, torch.dtype):
            table[f"torch.{name}"] = value
    return table


_REAL = _real_globals()
_record_types: dict[str, type[Record]] = {}


def _record_type(qualname: str) -> type[Record]:
    if qualname not in _record_types:
        _record_types[qualname] = type(qualname.rsplit(".", 1)[-1], (Record,), {"qualname": qualname})
    return _record_types[qualname]


def _is_torch_nn_class(qualname: str) -> bool:
    """``torch.nn.modules.<file>.<Class>`` naming an existing nn.Module subclass (looked up, not imported
    from the file's say-so: torch.nn is already loaded)."""
    if not qualname.startswith(_TORCH_NN_PREFIX):
        return False
    module_path, _, name = qualname.rpartition(".")
    submodule = getattr(torch.nn.modules, module_path[len(_TORCH_NN_PREFIX) :], None)
    value = getattr(submodule, name, None) if submodule is not None else None
    return isinstance(value, type) and issubclass(value, torch.nn.Module)


def _python3_name(module: str, name: str) -> tuple[str, str]:
    """Protocol 2 pickles store Python 2 names (``__builtin__``, ``commands``); map them back as
    pickle's own ``fix_imports`` does, so the allow-list and error messages see Python 3 names."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        module, name = _python3_name(module, name)
        qualname = f"{module}.{name}"
        if qualname in _REAL:
            return _REAL[qualname]
        if qualname in _RECORD_GLOBALS or _is_torch_nn_class(qualname):
            return _record_type(qualname)
        raise UnsafeCheckpointError(
            f"refused to unpickle the global {qualname!r}: it is not on the allow-list of what a KAPAO "
            "checkpoint contains (loading it could run arbitrary code)"
        )


def load(file: Any, **kwargs: Any) -> Any:
    return Unpickler(file, **kwargs).load()


def loads(data: bytes, **kwargs: Any) -> Any:
    import io

    return Unpickler(io.BytesIO(data), **kwargs).load()


# torch.load(pickle_module=...) only needs these names.
__all__ = ["Record", "Unpickler", "load", "loads"]
