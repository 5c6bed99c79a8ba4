"""Fixtures shared by the whole suite.

``../shared`` (reference fixtures and real COCO samples) sits beside a development checkout and in CI,
but not on users' machines: every test that needs it asks for a fixture below and skips without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path | None:
    candidates = [os.environ.get("KAPAO_EDGE_SHARED"), REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "reference").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared_dir()
    if path is None:
        pytest.skip("../shared (reference fixtures and data samples) is not present")
    return path


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


@pytest.fixture(scope="session")
def coco_sample_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "coco-sample"


@pytest.fixture(scope="session")
def crowdpose_sample_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "crowdpose-sample"


@pytest.fixture(scope="session")
def onnx_export(tmp_path_factory):
    """Export once per session and share: ``onnx_export(checkpoint, dynamic=..., imgsz=..., batch=...)``.

    Exports take seconds each; engines, export, bench and command tests reuse the same files.
    """
    from kapao_edge.export import export_onnx
    from kapao_edge.model import read_checkpoint

    cache: dict[tuple, Path] = {}

    def export(checkpoint: Path, *, dynamic: str = "batch+hw", imgsz=(256, 320), batch: int = 1) -> Path:
        key = (str(checkpoint), dynamic, tuple(imgsz), batch)
        if key not in cache:
            loaded = read_checkpoint(checkpoint)
            out = tmp_path_factory.mktemp("onnx") / f"{Path(checkpoint).stem}_{dynamic.replace('+', '_')}.onnx"
            export_onnx(loaded.model, out, imgsz=imgsz, batch=batch, dynamic=dynamic, source_path=checkpoint)
            cache[key] = out
        return cache[key]

    return export


@pytest.fixture(scope="session")
def tiny_onnx(onnx_export, reference_dir: Path) -> Path:
    """The random tiny COCO model exported with dynamic batch and size (its metadata included)."""
    return onnx_export(reference_dir / "kapao_tiny_coco_random.pt", dynamic="batch+hw", imgsz=(256, 256))


@pytest.fixture(scope="session")
def synth_set(tmp_path_factory) -> Path:
    """12 synthetic 256 px scenes with COCO keypoint annotations: (folder)/images, person_keypoints.json."""
    from kapao_edge.data.synth import generate_dataset
    from kapao_edge.presets import get_preset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, 12, 0, get_preset("coco"), 256, workers=1)
    return out


@pytest.fixture(scope="session")
def tiny_fp16_onnx(tiny_onnx: Path, tmp_path_factory) -> Path:
    """``tiny_onnx`` converted to FP16 (FP32 decode), no calibration data."""
    from kapao_edge.calibration import quantize_onnx

    out = tmp_path_factory.mktemp("fp16") / "coco_fp16.onnx"
    quantize_onnx(tiny_onnx, precision="fp16", out=out)
    return out


@pytest.fixture(scope="session")
def kapao_s_checkpoint(tmp_path_factory) -> Path:
    """A freshly initialised kapao_s (seeded) saved in the kapao-edge format."""
    import torch

    from kapao_edge.model import build_model, save_checkpoint

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("kapao_s") / "kapao_s.pt"
    save_checkpoint(build_model("kapao_s"), path)
    return path
