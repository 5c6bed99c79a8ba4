"""ONNX Runtime backend specifics: foreign files, metadata, providers, options."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from kapao_edge.engines import load_engine
from kapao_edge.engines.onnxruntime_backend import load
from kapao_edge.errors import EngineError, InputError


@pytest.fixture(scope="module")
def coco_onnx(reference_dir: Path, onnx_export) -> Path:
    return onnx_export(reference_dir / "kapao_tiny_coco_random.pt")


@pytest.fixture
def stripped_onnx(coco_onnx: Path, tmp_path: Path) -> Path:
    """The same graph without our metadata entry, as a file from another exporter would be."""
    proto = onnx.load(str(coco_onnx))
    del proto.metadata_props[:]
    path = tmp_path / "foreign.onnx"
    onnx.save(proto, str(path))
    return path


def test_metadata_is_read_from_the_file(coco_onnx: Path) -> None:
    with load_engine(coco_onnx, imgsz=640) as engine:  # imgsz is ignored when the file says
        meta = engine.metadata
        assert (engine.backend, meta.preset, meta.num_keypoints) == ("onnxruntime", "coco", 17)
        assert meta.dynamic_batch and meta.dynamic_hw and meta.default_hw is None
        assert meta.extra["kp_flip"][:3] == [0, 2, 1] and meta.extra["opset"] == 19
        assert engine.providers == ["CPUExecutionProvider"]


def test_file_without_metadata_needs_preset_or_imgsz(stripped_onnx: Path, coco_onnx: Path) -> None:
    with pytest.raises(InputError, match="no kapao_edge metadata.*pass --preset/--imgsz"):
        load(stripped_onnx)
    images = np.random.default_rng(0).random((1, 3, 128, 192), dtype=np.float32)
    with load(stripped_onnx, preset="coco") as foreign, load(coco_onnx) as ours:
        assert foreign.metadata.preset == "coco" and foreign.metadata.input_shape == ["batch", 3, "height", "width"]
        np.testing.assert_array_equal(foreign(images), ours(images))
    with load(stripped_onnx, imgsz=256) as inferred:  # K from the output's 57 columns
        assert inferred.metadata.num_keypoints == 17
    with pytest.raises(InputError, match="preset 'crowdpose' needs 48"):
        load(stripped_onnx, preset="crowdpose")


def test_non_onnx_and_missing_files_are_engine_errors(tmp_path: Path) -> None:
    text = tmp_path / "notes.onnx"
    text.write_text("definitely not a protobuf")
    with pytest.raises(EngineError, match="not a loadable ONNX model"):
        load(text)
    with pytest.raises(EngineError, match="ONNX file not found"):
        load(tmp_path / "missing.onnx")


def test_unavailable_provider_falls_back_to_cpu_with_a_warning(coco_onnx: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("CUDA is available here; the fallback path is not taken")
    with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider"):
        engine = load(coco_onnx, providers=["cuda"])
    assert engine.providers == ["CPUExecutionProvider"]


def test_optimisation_levels_and_threads_give_the_same_predictions(coco_onnx: Path) -> None:
    images = np.random.default_rng(1).random((2, 3, 128, 128), dtype=np.float32)
    outputs = [load(coco_onnx, graph_optimization=level, threads=1, spinning=False)(images) for level in ("disable", "basic", "all")]
    for output in outputs[1:]:
        assert np.abs(output - outputs[0]).max() <= 1e-4 * np.abs(outputs[0]).max()
    with pytest.raises(InputError, match="graph_optimization must be one of"):
        load(coco_onnx, graph_optimization="max")


def test_timed_run_on_cpu_reports_one_infer_stage(coco_onnx: Path) -> None:
    images = np.random.default_rng(2).random((1, 3, 128, 128), dtype=np.float32)
    with load(coco_onnx) as engine:
        output = engine.run(images, timed=True)
        np.testing.assert_array_equal(output.predictions, engine(images))
        assert list(output.stages) == ["infer"] and output.stages["infer"] > 0
        assert output.num_candidates is None and engine.device == "cpu"

