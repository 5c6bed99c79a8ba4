"""`kapao-edge export` and `kapao-edge info F.onnx` end to end, and their failure modes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kapao_edge.cli import app
from kapao_edge.export import onnx_export

runner = CliRunner()


@pytest.fixture(scope="module")
def cli_export(reference_dir: Path, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("cli") / "tiny.onnx"
    result = runner.invoke(
        app,
        ["export", "--weights", str(reference_dir / "kapao_tiny_crowdpose_random.pt"), "--imgsz", "128x192",
         "--dynamic", "batch", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    return out, result.output


def test_export_writes_a_verified_file_and_says_so(cli_export) -> None:
    out, output = cli_export
    assert out.is_file()
    text = " ".join(output.split())
    assert "ONNX checker passed" in text and "max relative" in text
    assert "(batch, 3, 128, 192) -> predictions (batch, 1530, 48)" in text


def test_info_prints_onnx_metadata(cli_export) -> None:
    out, _ = cli_export
    result = runner.invoke(app, ["info", str(out)])
    assert result.exit_code == 0, result.output
    assert "crowdpose" in result.stdout and "K=14" in result.stdout and "opset 19" in result.stdout
    assert "dynamic axes  batch" in result.stdout
    data = json.loads(runner.invoke(app, ["info", str(out), "--json"]).stdout)
    assert data["kapao_edge"]["input_shape"] == ["batch", 3, 128, 192]
    assert data["opset"] == 19 and data["file_size"] == out.stat().st_size
    assert len(data["kapao_edge"]["source_sha256"]) == 64


def test_info_on_an_onnx_without_our_metadata(cli_export, tmp_path: Path) -> None:
    import onnx

    proto = onnx.load(str(cli_export[0]))
    del proto.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(proto, str(foreign))
    result = runner.invoke(app, ["info", str(foreign)])
    assert result.exit_code == 0, result.output
    assert "pass --preset/--imgsz" in " ".join(result.stdout.split())


def _invoke_failing(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def test_bad_inputs_fail_cleanly_without_files(reference_dir: Path, tmp_path: Path) -> None:
    weights = str(reference_dir / "kapao_tiny_coco_random.pt")
    out = tmp_path / "out.onnx"
    assert "not a multiple of 64" in _invoke_failing(["export", "-w", weights, "--imgsz", "100x128", "--out", str(out)])
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert "cannot write to" in _invoke_failing(["export", "-w", weights, "--imgsz", "128", "--out", str(blocker / "m.onnx")])
    notes = tmp_path / "notes.pt"
    notes.write_text("not a checkpoint")
    assert "not a PyTorch checkpoint" in _invoke_failing(["export", "-w", str(notes), "--out", str(out)])
    assert "--dynamic must be one of" in _invoke_failing(["export", "-w", weights, "--imgsz", "128", "--dynamic", "hw", "--out", str(out)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "notes.pt"]


def test_failed_verification_exits_non_zero_and_leaves_nothing(reference_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(onnx_export, "VERIFY_TOLERANCE", -1.0)  # unreachable: stands in for a bad graph
    out = tmp_path / "bad.onnx"
    message = _invoke_failing(["export", "-w", str(reference_dir / "kapao_tiny_coco_random.pt"), "--imgsz", "128",
                               "--dynamic", "none", "--no-simplify", "--out", str(out)])
    assert "differs from torch" in message
    assert list(tmp_path.iterdir()) == []


def test_info_errors_on_non_onnx(tmp_path: Path) -> None:
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"\x00\x01garbage")
    assert "is not an ONNX model" in _invoke_failing(["info", str(fake)])
    assert "ONNX file not found" in _invoke_failing(["info", str(tmp_path / "none.onnx")])
