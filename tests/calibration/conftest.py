"""Fixtures for calibration tests: a small FP32 export and a small synthetic image set."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_onnx(onnx_export, reference_dir: Path) -> Path:
    """The random tiny COCO model exported with dynamic batch and size (its metadata included)."""
    return onnx_export(reference_dir / "kapao_tiny_coco_random.pt", dynamic="batch+hw", imgsz=(256, 256))


@pytest.fixture(scope="session")
def tiny_onnx_fixed(onnx_export, reference_dir: Path) -> Path:
    """The same model with a fixed 1x3x256x320 input."""
    return onnx_export(reference_dir / "kapao_tiny_coco_random.pt", dynamic="none", imgsz=(256, 320))


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory) -> Path:
    """12 synthetic 256 px scenes with COCO keypoint annotations: (folder)/images, person_keypoints.json."""
    from kapao_edge.data.synth import generate_dataset
    from kapao_edge.presets import get_preset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, 12, 0, get_preset("coco"), 256, workers=1)
    return out


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
