"""Fixtures for calibration tests (``tiny_onnx`` and ``synth_set`` live in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_onnx_fixed(onnx_export, reference_dir: Path) -> Path:
    """The same model with a fixed 1x3x256x320 input."""
    return onnx_export(reference_dir / "kapao_tiny_coco_random.pt", dynamic="none", imgsz=(256, 320))


@pytest.fixture()
def image_copy(tmp_path: Path, synth_set: Path):
    """A private copy of some synthetic images, for tests that change the set."""
    import shutil

    def make(count: int, name: str = "calib") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        for path in sorted((synth_set / "images").iterdir())[:count]:
            shutil.copy2(path, folder / path.name)
        return folder

    return make
