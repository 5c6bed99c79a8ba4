"""`kapao-edge build` through the CLI: every bad input exits 2 with one line before TensorRT is needed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import onnx
import pytest
from typer.testing import CliRunner

from kapao_edge.cli import app
from kapao_edge.engines.tensorrt_backend import NEEDS_TENSORRT

runner = CliRunner()
HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None


@pytest.fixture(scope="module")
def fixed_onnx(onnx_export, reference_dir: Path) -> Path:
    return onnx_export(reference_dir / "kapao_tiny_coco_random.pt", dynamic="none", imgsz=(128, 192), batch=2)


@pytest.fixture(scope="module")
def bad_files(tiny_onnx: Path, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    text = folder / "notes.onnx"
    text.write_text("definitely not a protobuf")
    proto = onnx.load(str(tiny_onnx))
    del proto.metadata_props[:]
    foreign = folder / "foreign.onnx"
    onnx.save(proto, str(foreign))
    return {"missing": folder / "missing.onnx", "text": text, "foreign": foreign}


def _assert_one_line_error(result, message: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert message in lines[0], result.output


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("missing", "ONNX file not found"),
        ("text", "is not an ONNX model"),
        ("foreign", "has no kapao_edge metadata"),
    ],
)
def test_unusable_files_exit_2(which: str, message: str, bad_files: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--onnx", str(bad_files[which]), "--out", str(tmp_path / "m.engine")])
    _assert_one_line_error(result, message)
    assert not (tmp_path / "m.engine").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--opt-shape", "1x3x200x256"], "height and width must be positive multiples of 64"),
        (["--opt-shape", "1x3x256"], "--opt-shape must look like 1x3x640x640"),
        (["--min-shape", "1x3x256x256"], "together, or --opt-shape alone"),
        (["--min-shape", "1x3x512x512", "--opt-shape", "1x3x256x256", "--max-shape", "1x3x640x640"], "min <= opt <= max"),
        (["--min-shape", "1x3x128x128", "--opt-shape", "1x3x256x256", "--max-shape", "1x3x192x640"], "min <= opt <= max"),
        (["--opt-shape", "1x4x256x256"], "3 channels"),
        (["--workspace-mb", "0"], "--workspace-mb must be >= 1"),
        (["--out", "{tmp}/model.onnx"], "must end in .engine or .plan"),
    ],
)
def test_bad_options_exit_2_before_tensorrt(args: list[str], message: str, tiny_onnx: Path, tmp_path: Path) -> None:
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "m.engine")]
    result = runner.invoke(app, ["build", "--onnx", str(tiny_onnx), *args])
    _assert_one_line_error(result, message)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("shape", "message"),
    [("1x3x128x192", "this ONNX has a fixed batch of 2"), ("2x3x256x320", "this ONNX takes fixed 128x192 inputs")],
)
def test_shapes_that_contradict_a_fixed_onnx_exit_2(shape: str, message: str, fixed_onnx: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--onnx", str(fixed_onnx), "--opt-shape", shape, "--out", str(tmp_path / "m.engine")])
    _assert_one_line_error(result, message)


def test_fp16_flag_needs_an_fp32_onnx(tiny_fp16_onnx: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", "--onnx", str(tiny_fp16_onnx), "--fp16", "--out", str(tmp_path / "m.engine")])
    _assert_one_line_error(result, "--fp16 needs an FP32 ONNX")


@pytest.mark.skipif(HAS_TENSORRT, reason="tensorrt is installed here")
def test_valid_input_without_tensorrt_exits_2_with_what_is_needed(tiny_onnx: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, [
        "build", "--onnx", str(tiny_onnx), "--out", str(tmp_path / "m.engine"), "--min-shape", "1x3x128x128",
        "--opt-shape", "1x3x256x320", "--max-shape", "2x3x320x384", "--workspace-mb", "512",
        "--timing-cache", str(tmp_path / "timing.cache"),
    ])
    _assert_one_line_error(
        result, NEEDS_TENSORRT
    )
    assert list(tmp_path.iterdir()) == []


def test_build_writes_plan_and_sidecar(tiny_onnx: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorrt")
    out = tmp_path / "coco.plan"
    result = runner.invoke(app, [
        "build", "--onnx", str(tiny_onnx), "--out", str(out), "--opt-shape", "1x3x256x320",
        "--timing-cache", str(tmp_path / "timing.cache"),
    ])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "profile: min 1x3x256x320" in result.output
    sidecar = json.loads((tmp_path / "coco.plan.json").read_text())
    assert sidecar["input_shape"] == [1, 3, 256, 320] and sidecar["tensorrt"]["profile"]["opt"] == [1, 3, 256, 320]
    assert out.stat().st_size > 0 and (tmp_path / "timing.cache").stat().st_size > 0
