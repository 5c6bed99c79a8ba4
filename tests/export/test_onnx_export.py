"""ONNX export: graph interface, metadata, official-output parity, checker, and failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from kapao_edge.errors import EngineError, InputError
from kapao_edge.export import METADATA_KEY, export_onnx, onnx_export
from kapao_edge.model import read_checkpoint
from kapao_edge.utils.io import sha256_file


@pytest.fixture(scope="module", params=["coco", "crowdpose"])
def fixture_case(request, reference_dir: Path, onnx_export):
    checkpoint = reference_dir / f"kapao_tiny_{request.param}_random.pt"
    with np.load(reference_dir / f"kapao_tiny_{request.param}_random_io.npz") as data:
        io = {"input": data["input"], "output": data["output"]}
    return request.param, checkpoint, onnx_export(checkpoint), io


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_graph_interface_and_metadata(fixture_case) -> None:
    preset, checkpoint, path, _ = fixture_case
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    no = 57 if preset == "coco" else 48
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["predictions"]
    assert dims(proto.graph.input[0]) == ["batch", 3, "height", "width"]
    assert dims(proto.graph.output[0]) == ["batch", "num_rows", no]
    assert next(o.version for o in proto.opset_import if o.domain == "") == 19
    meta = json.loads(next(p.value for p in proto.metadata_props if p.key == METADATA_KEY))
    assert meta["preset"] == preset and meta["num_keypoints"] == (no - 6) // 3
    assert meta["input_shape"] == ["batch", 3, "height", "width"]
    assert meta["strides"] == [8, 16, 32, 64] and meta["anchors"][0] == [19, 27, 44, 40, 38, 94]
    assert meta["precision"] == "fp32" and meta["model_name"] == "kapao_tiny"
    assert meta["source_sha256"] == sha256_file(checkpoint)
    assert len(meta["kp_flip"]) == (no - 6) // 3
    assert "Focus -> Conv: 1" in meta["rewrites"]
    assert meta["postprocess"] == {}  # an official checkpoint recommends nothing: official presets apply
    # the Focus slicing is gone: one strided conv reads the image
    assert not any(node.op_type == "Slice" and "images" in node.input for node in proto.graph.node)


def test_onnx_runtime_reproduces_the_official_outputs(fixture_case) -> None:
    """The reference npz comes from the official code: decode inside the graph must match it."""
    _, _, path, io = fixture_case
    session = _session(path)
    actual = session.run(None, {"images": io["input"]})[0]  # (2, 5100, No)
    assert actual.shape == io["output"].shape
    scale = np.abs(io["output"]).max()
    assert np.abs(actual - io["output"]).max() <= 1e-4 * scale


def test_dynamic_hw_grids_follow_the_runtime_shape(fixture_case) -> None:
    _, checkpoint, path, _ = fixture_case
    import torch

    model = read_checkpoint(checkpoint).model.fuse().eval()
    session = _session(path)
    for shape in [(1, 3, 128, 128), (3, 3, 384, 192)]:
        x = np.random.default_rng(1).random(shape, dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        actual = session.run(None, {"images": x})[0]
        assert actual.shape == expected.shape
        assert np.abs(actual - expected).max() <= 1e-4 * np.abs(expected).max()


def test_fixed_shape_export(reference_dir: Path, onnx_export) -> None:
    path = onnx_export(reference_dir / "kapao_tiny_coco_random.pt", dynamic="none", imgsz=(128, 192), batch=2)
    proto = onnx.load(str(path))
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [2, 3, 128, 192]
    rows = 3 * (16 * 24 + 8 * 12 + 4 * 6 + 2 * 3)  # anchors x cells at strides 8, 16, 32, 64
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [2, rows, 57]
    meta = json.loads(next(p.value for p in proto.metadata_props if p.key == METADATA_KEY))
    assert meta["input_shape"] == [2, 3, 128, 192]


def test_recommended_postprocessing_reaches_every_engine(reference_dir: Path, tmp_path: Path) -> None:
    """Checkpoint -> ONNX -> FP16 ONNX: each engine recommends what the checkpoint did, and the
    commands' configuration (PostprocessConfig.named) picks it up."""
    from kapao_edge.calibration import quantize_onnx
    from kapao_edge.engines import load_engine
    from kapao_edge.model import save_checkpoint
    from kapao_edge.postprocess import PostprocessConfig

    model = read_checkpoint(reference_dir / "kapao_tiny_coco_random.pt").model
    checkpoint = save_checkpoint(model, tmp_path / "tuned.pt", postprocess={"overwrite_tol": 12})
    fp32 = tmp_path / "tuned.onnx"
    export_onnx(read_checkpoint(checkpoint).model, fp32, imgsz=(128, 128), dynamic="batch")
    fp16 = tmp_path / "tuned_fp16.onnx"
    quantize_onnx(fp32, precision="fp16", out=fp16)
    for path in (checkpoint, fp32, fp16):
        with load_engine(path, backend="torch" if path.suffix == ".pt" else None) as engine:
            assert engine.metadata.postprocess == {"overwrite_tol": 12.0}, path.name
            config = PostprocessConfig.named("demo", engine.metadata.postprocess)
            assert config == PostprocessConfig.official_demo(overwrite_tol=12.0)


def test_report_figures(reference_dir: Path, tmp_path: Path) -> None:
    model = read_checkpoint(reference_dir / "kapao_tiny_coco_random.pt").model
    report = export_onnx(model, tmp_path / "m.onnx", imgsz=(128, 128), dynamic="batch", simplify=True)
    assert report.input_shape == ["batch", 3, 128, 128]
    assert report.output_shape == ["batch", 3 * (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2), 57]
    assert 0 < report.nodes_final <= report.nodes_exported
    assert report.max_rel_diff <= 1e-4 and report.verified_shapes == [[1, 3, 128, 128], [2, 3, 128, 128]]
    assert report.file_size == (tmp_path / "m.onnx").stat().st_size


def test_verification_failure_leaves_no_file(reference_dir: Path, tmp_path: Path, monkeypatch) -> None:
    """A tolerance nothing can meet stands in for a broken export: the error is loud, no file stays."""
    monkeypatch.setattr(onnx_export, "VERIFY_TOLERANCE", -1.0)
    model = read_checkpoint(reference_dir / "kapao_tiny_coco_random.pt").model
    target = tmp_path / "broken.onnx"
    with pytest.raises(EngineError, match="differs from torch"):
        export_onnx(model, target, imgsz=(128, 128), dynamic="none", simplify=False)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"imgsz": (100, 128)}, "not a multiple of 64"),
        ({"dynamic": "height"}, "--dynamic must be one of"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"opset": 11}, "opset 11 is too old"),
    ],
)
def test_bad_options_fail_before_exporting(reference_dir: Path, tmp_path: Path, options, message: str) -> None:
    model = read_checkpoint(reference_dir / "kapao_tiny_coco_random.pt").model
    with pytest.raises(InputError, match=message):
        export_onnx(model, tmp_path / "m.onnx", **options)
    assert list(tmp_path.iterdir()) == []
