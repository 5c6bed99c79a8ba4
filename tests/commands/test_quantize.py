"""`kapao-edge quantize` through the CLI: FP16 and INT8 files, cache reuse, and refused inputs."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kapao_edge.cli import app

runner = CliRunner()


def test_int8_quantize_writes_a_linted_file_and_reuses_the_cache(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    out = tmp_path / "model_int8.onnx"
    args = [
        "quantize", "--onnx", str(tiny_onnx), "--precision", "int8", "--calib", str(synth_set / "images"),
        "--calib-images", "4", "--imgsz", "128", "--out", str(out), "--method", "percentile",
    ]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert out.is_file() and "Q/DQ lint: passed" in first.output and "calibrated" in first.output
    report = json.loads(out.with_suffix(".quant.json").read_text())
    assert report["calibration"]["method"] == "percentile" and report["calibration"]["images"] == 4

    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "statistics from cache" in second.output


def test_int8_cpu_target_reports_its_conv_kernel_choice(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    out = tmp_path / "model_int8_cpu.onnx"
    result = runner.invoke(app, [
        "quantize", "--onnx", str(tiny_onnx), "--precision", "int8", "--calib", str(synth_set / "images"),
        "--calib-images", "2", "--imgsz", "128", "--target", "cpu", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert "conv kernels:" in result.output and "on QGEMM" in result.output
    kernels = json.loads(out.with_suffix(".quant.json").read_text())["details"]["conv_kernels"]
    assert set(kernels) == {"qgemm_convs", "convsym_us", "chosen_us"}
    assert 0 < kernels["chosen_us"] <= kernels["convsym_us"]


def test_fp16_quantize(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    out = tmp_path / "model_fp16.onnx"
    result = runner.invoke(app, [
        "quantize", "--onnx", str(tiny_onnx), "--precision", "fp16", "--calib", str(synth_set / "person_keypoints.json"),
        "--calib-images", "2", "--imgsz", "128", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    assert out.is_file() and "fp16" in result.output and "casts inserted" in result.output
    assert "fewer than the 500" not in result.output  # the calibration-size warning is about INT8 only


def test_bad_inputs_exit_with_a_message_and_no_file(tiny_onnx: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "never.onnx"
    cases = [
        (["--precision", "int8", "--calib", str(empty)], "no images"),
        (["--precision", "int8"], "needs calibration images"),
        (["--precision", "int8", "--calib", str(empty), "--target", "gpu"], "--target must be one of"),
        (["--precision", "int8", "--calib", str(empty), "--method", "mse"], "--method must be one of"),
    ]
    for extra, message in cases:
        result = runner.invoke(app, ["quantize", "--onnx", str(tiny_onnx), "--out", str(out), *extra])
        assert result.exit_code == 2, result.output
        assert message in result.output
    assert not out.exists()


def test_a_graph_that_breaks_the_qdq_rules_is_not_written(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    """Opset 16 is valid ONNX and quantizes, but TensorRT's Q/DQ rules want >= 17: the lint stops it."""
    import onnx

    model = onnx.load(str(tiny_onnx))
    model.opset_import[0].version = 16
    for node in model.graph.node:  # Resize attributes that opset 16 does not know
        if node.op_type == "Resize":
            kept = [a for a in node.attribute if a.name not in ("antialias", "keep_aspect_ratio_policy", "axes")]
            del node.attribute[:]
            node.attribute.extend(kept)
    onnx.checker.check_model(model, full_check=True)
    old = tmp_path / "opset16.onnx"
    onnx.save(model, str(old))
    out = tmp_path / "opset16_int8.onnx"
    result = runner.invoke(app, [
        "quantize", "--onnx", str(old), "--precision", "int8", "--calib", str(synth_set / "images"),
        "--calib-images", "2", "--imgsz", "128", "--out", str(out),
    ])
    assert result.exit_code == 2, result.output
    assert "breaks the TensorRT Q/DQ rules" in result.output and "opset 16 < 17" in result.output
    assert not out.exists()
