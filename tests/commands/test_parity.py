"""`kapao-edge parity` through the CLI: variants made from a checkpoint, the JSON shape, tolerances."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kapao_edge.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory) -> Path:
    from kapao_edge.data.synth import generate_dataset

    out = tmp_path_factory.mktemp("synth")
    generate_dataset(out, 10, 2, "coco", 256, workers=1)
    return out


@pytest.fixture(scope="module")
def parity_run(tmp_path_factory, posing_checkpoint: Path, synth_dir: Path):
    work = tmp_path_factory.mktemp("parity")
    json_path = work / "parity.json"
    result = runner.invoke(app, [
        "parity", "--weights", str(posing_checkpoint), "--data", str(synth_dir / "person_keypoints.json"),
        "--precisions", "fp32,fp16,int8", "--imgsz", "256", "--calib-images", "6",
        "--work-dir", str(work / "variants"), "--json", str(json_path),
        "--tolerance-fp16", "100", "--tolerance-int8", "100",  # random weights: structure, not accuracy
    ])
    return result, json_path, work / "variants"


def test_parity_reports_every_variant_in_the_documented_json_shape(parity_run):
    result, json_path, _ = parity_run
    assert result.exit_code == 0, result.output
    report = json.loads(json_path.read_text())
    assert set(report) == {"reference", "variants"}
    assert {"AP", "AP50", "AR"} <= set(report["reference"])
    assert [v["precision"] for v in report["variants"]] == ["fp32", "fp16", "int8"]
    for variant in report["variants"]:
        assert {"name", "backend", "precision", "path", "AP", "AP50", "AR", "delta_AP", "within_tolerance"} <= set(variant)
        assert variant["backend"] == "onnxruntime" and Path(variant["path"]).is_file()


def test_fp32_onnx_matches_the_torch_reference(parity_run):
    _, json_path, _ = parity_run
    report = json.loads(json_path.read_text())
    fp32 = report["variants"][0]
    reference_ap = report["reference"]["AP"]
    assert reference_ap is not None and not math.isnan(reference_ap)
    assert abs(fp32["delta_AP"]) <= 0.05 and fp32["within_tolerance"]
    # The posing fixture saturates its confidences, so NMS and fusion meet exact ties that the last
    # float bit decides: positions may differ by a cell, but the pose count may not.
    assert fp32["detection_deltas"]["pose_count_difference"] == 0


def test_a_variant_outside_its_tolerance_fails_the_command(parity_run, posing_checkpoint: Path, synth_dir: Path):
    _, _, variants = parity_run
    int8 = next(variants.glob("*_int8.onnx"))
    result = runner.invoke(app, [
        "parity", "--weights", str(posing_checkpoint), "--data", str(synth_dir / "person_keypoints.json"),
        "--engines", str(int8), "--imgsz", "256", "--tolerance-int8", "-1",
    ])
    assert result.exit_code == 1, result.output
    assert "out of tolerance" in result.output


def test_missing_engine_file_is_a_user_error(posing_checkpoint: Path, synth_dir: Path, tmp_path: Path):
    result = runner.invoke(app, [
        "parity", "--weights", str(posing_checkpoint), "--data", str(synth_dir / "person_keypoints.json"),
        "--engines", str(tmp_path / "nope.onnx"),
    ])
    assert result.exit_code == 2 and "not found" in result.output


def test_plot_is_written_or_refused_up_front(parity_run, posing_checkpoint: Path, synth_dir: Path, tmp_path: Path):
    import importlib.util

    _, _, variants = parity_run
    fp32 = next(variants.glob("*_fp32.onnx"))
    plot = tmp_path / "parity.png"
    result = runner.invoke(app, [
        "parity", "--weights", str(posing_checkpoint), "--data", str(synth_dir / "person_keypoints.json"),
        "--engines", str(fp32), "--imgsz", "256", "--plot", str(plot),
    ])
    if importlib.util.find_spec("matplotlib") is None:
        assert result.exit_code == 2 and "needs matplotlib" in result.output
        assert not plot.exists()
    else:
        assert result.exit_code == 0, result.output
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_at_80_columns_rows_are_numbered_and_named_above_the_table(parity_run, posing_checkpoint: Path,
                                                                   synth_dir: Path, tmp_path: Path):
    """A CI log is 80 columns: engine names must not fold mid-word; the dataset folder synth wrote is
    accepted as --data (its one JSON and images/)."""
    import os
    import subprocess
    import sys

    variant = parity_run[2] / f"{posing_checkpoint.stem}_fp32.onnx"  # made by the module's parity run
    long_name = tmp_path / "kapao_variant_with_a_long_descriptive_file_name_fp32.onnx"
    long_name.write_bytes(variant.read_bytes())
    done = subprocess.run(
        [sys.executable, "-c", "from kapao_edge.cli import app; app()", "parity", "-w", str(posing_checkpoint),
         "--data", str(synth_dir), "--engines", str(long_name), "--imgsz", "256"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "80"}, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80 and "…" not in done.stdout, done.stdout
    assert "#0 torch (reference)" in lines and f"#1 {long_name.stem}" in lines, done.stdout
    assert any(line.startswith("│ #1 ") for line in lines), done.stdout
