"""Bundled-model files with and without the GPU deployment I/O, exported once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from kapao_edge.io_options import IoOptions


@pytest.fixture(scope="session")
def bundled_files(tmp_path_factory) -> dict[str, Path]:
    """{"float": float input + every row, "uint8_compact": uint8 input + 1024 candidates}, dynamic shapes."""
    from kapao_edge.export import export_onnx
    from kapao_edge.model import read_checkpoint

    model = read_checkpoint("bundled").model
    folder = tmp_path_factory.mktemp("bundled_io")
    files = {"float": folder / "float.onnx", "uint8_compact": folder / "uint8_compact.onnx"}
    export_onnx(model, files["float"], imgsz=(448, 448), verify=False)
    export_onnx(model, files["uint8_compact"], imgsz=(448, 448), io=IoOptions("uint8", 1024))  # verified
    return files


@pytest.fixture(scope="session")
def scenes() -> list:
    """Eight 480x640 synthetic multi-person frames (BGR uint8) of a seed no model trained on."""
    import numpy as np

    from kapao_edge.data.synth import generate_scene

    return [generate_scene(np.random.default_rng(20261204 + i), "coco", imgsz=(480, 640)).image for i in range(8)]
