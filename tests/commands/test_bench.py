"""`kapao-edge bench` with several engines side by side, JSON and plot outputs, and its errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kapao_edge.cli import app

runner = CliRunner()


def test_bench_compares_torch_and_onnx(reference_dir: Path, onnx_export, tmp_path: Path) -> None:
    weights = reference_dir / "kapao_tiny_coco_random.pt"
    onnx_path = onnx_export(weights)
    report, plot = tmp_path / "bench.json", tmp_path / "bench.png"
    result = runner.invoke(
        app,
        ["bench", "--weights", str(weights), "--engine", str(onnx_path), "--engine", str(onnx_path), "--imgsz", "128x192",
         "--batch", "2", "--iters", "3", "--warmup", "1", "--json", str(report), "--plot", str(plot)],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(report.read_text())
    assert [r["backend"] for r in data["results"]] == ["torch", "onnxruntime", "onnxruntime"]
    assert data["results"][0]["ratio_vs_first"] == 1.0
    for entry in data["results"]:
        assert entry["batch"] == 2 and entry["input_hw"] == [128, 192] and entry["iters"] == 3
        assert set(entry["stages"]) == {"preprocess", "infer", "postprocess"}
        assert entry["throughput"] > 0 and entry["peak_rss_mb"] > 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "1.00x" in result.stdout  # the first engine is the ratio baseline


def test_bench_errors(tmp_path: Path, reference_dir: Path) -> None:
    nothing = runner.invoke(app, ["bench"])
    assert nothing.exit_code == 2 and "at least one --engine or --weights" in nothing.output
    weights = str(reference_dir / "kapao_tiny_coco_random.pt")
    size = runner.invoke(app, ["bench", "-w", weights, "--imgsz", "100x128"])
    assert size.exit_code == 2 and "not a multiple of 64" in size.output
    blocker = tmp_path / "file"
    blocker.write_text("x")
    unwritable = runner.invoke(app, ["bench", "-w", weights, "--json", str(blocker / "out.json")])
    assert unwritable.exit_code == 2 and "cannot write to" in unwritable.output
    missing = runner.invoke(app, ["bench", "-e", str(tmp_path / "missing.onnx")])
    assert missing.exit_code == 2 and "ONNX file not found" in missing.output
