"""Fixtures for the model tests: reference files, and a writer of official-format checkpoints."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch


@pytest.fixture(scope="session", params=["coco", "crowdpose"])
def fixture_name(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def official_checkpoint(reference_dir: Path, fixture_name: str) -> Path:
    return reference_dir / f"kapao_tiny_{fixture_name}_random.pt"


@pytest.fixture(scope="session")
def reference_io(reference_dir: Path, fixture_name: str) -> dict[str, np.ndarray]:
    with np.load(reference_dir / f"kapao_tiny_{fixture_name}_random_io.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture
def assert_close_relative() -> Callable[[Any, Any, float], None]:
    """Max abs difference within ``tol`` x the largest magnitude of the expected array."""

    def check(actual: Any, expected: Any, tol: float = 1e-4) -> None:
        actual = np.asarray(actual, dtype=np.float64)
        expected = np.asarray(expected, dtype=np.float64)
        assert actual.shape == expected.shape
        scale = max(np.abs(expected).max(), 1e-12)
        worst = np.abs(actual - expected).max() / scale
        assert worst <= tol, f"max relative difference {worst:.3g} > {tol}"

    return check


@pytest.fixture
def write_official(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write a checkpoint as the official code would pickle it, from records read by our unpickler.

    The records of an official file are turned back into objects whose classes pickle as
    ``models.yolo.Model`` etc. (stand-in modules registered in sys.modules for the duration of the test)
    and real ``torch.nn`` modules, so the written file has the same globals as a released one.
    """
    from kapao_edge.model.safe_pickle import Record

    fakes: dict[str, types.ModuleType] = {}

    def fake_class(qualname: str) -> type:
        module_name, _, name = qualname.rpartition(".")
        if module_name not in fakes:
            fakes[module_name] = types.ModuleType(module_name)
            monkeypatch.setitem(sys.modules, module_name, fakes[module_name])
            if "." in module_name:
                parent = module_name.split(".")[0]
                fakes.setdefault(parent, types.ModuleType(parent))
                monkeypatch.setitem(sys.modules, parent, fakes[parent])
        module = fakes[module_name]
        if not hasattr(module, name):
            setattr(module, name, type(name, (), {"__module__": module_name, "__qualname__": name}))
        return getattr(module, name)

    def revive(value: Any) -> Any:
        if isinstance(value, Record):
            if value.qualname.startswith("torch.nn.modules."):
                module_path, _, name = value.qualname.rpartition(".")
                cls = getattr(sys.modules[module_path], name)
            else:
                cls = fake_class(value.qualname)
            obj = cls.__new__(cls)
            obj.__dict__.update(revive(value.attrs))
            return obj
        if isinstance(value, dict):
            return type(value)((k, revive(v)) for k, v in value.items())
        if isinstance(value, list):
            return [revive(v) for v in value]
        return value

    def write(path: Path, payload: dict[str, Any]) -> Path:
        torch.save({key: revive(value) for key, value in payload.items()}, path)
        return path

    return write


@pytest.fixture
def official_records() -> Callable[[Path], dict[str, Any]]:
    """An official file's top-level dict with its objects as inert records."""
    from kapao_edge.model import safe_pickle

    def read(path: Path) -> dict[str, Any]:
        return torch.load(path, map_location="cpu", pickle_module=safe_pickle, weights_only=False)

    return read
