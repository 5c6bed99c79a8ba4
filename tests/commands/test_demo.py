"""`kapao-edge demo`: the README's first command, end to end on the bundled model."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from kapao_edge.cli import app

runner = CliRunner()


def test_demo_renders_detects_draws_and_scores(tmp_path: Path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--images", "2"])
    assert result.exit_code == 0, result.output
    assert "AP" in result.output and "PCK@0.2" in result.output
    drawn = sorted((tmp_path / "demo" / "poses").glob("*.jpg"))
    assert len(drawn) == 2


def test_demo_rejects_a_bad_image_count(tmp_path: Path):
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "demo"), "--images", "0"])
    assert result.exit_code == 2
    assert "--images" in result.output


def test_demo_reports_an_unknown_model_name(tmp_path: Path):
    result = runner.invoke(app, ["demo", "--weights", "no_such_model", "--out", str(tmp_path / "demo")])
    assert result.exit_code == 2
    assert "no_such_model" in result.output
