"""The CLI grammar every command shares: help with real metavars at 80 columns, one --imgsz
grammar, and scalar options given twice refused (exit 2, one line) instead of last-one-wins."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from kapao_edge.cli import app
from kapao_edge.cli_reference import cli_commands

COMMANDS = sorted(cli_commands())
# Typer's automatic type placeholders: <bool>, <str>, <int>, <float>, <path>, <list[...]>, <tuple...>
PLACEHOLDER = re.compile(r"<(?:bool|str|int|float|path|file|dir|text|list|tuple|choice)\b", re.IGNORECASE)


def _help(args: list[str]) -> str:
    result = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_has_real_metavars_at_80_columns(command: str | None) -> None:
    text = _help([command] if command else [])
    assert not PLACEHOLDER.search(text), PLACEHOLDER.search(text).group(0) + "\n" + text
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text, text  # no help text or metavar cut short to make room
    assert "--help" in text


@pytest.mark.parametrize("command", [name for name in COMMANDS if name not in ("build", "info")])
def test_every_size_option_shows_the_one_grammar(command: str) -> None:
    """Every --imgsz reads N|HxW, and help keeps its '[default: ...]' (rich markup would drop it)."""
    text = _help([command])
    row = next(line for line in text.splitlines() if "--imgsz" in line)
    assert "N|HxW" in row, text
    assert "[default:" in text.split("--imgsz", 1)[1], text


def test_flags_show_no_metavar() -> None:
    text = _help(["predict"])
    track = next(line for line in text.splitlines() if "--track" in line)
    assert re.search(r"--track\s{2,}Give each", track), track


# One scalar option of each command given twice, and the values the message must name.
REPEATS = {
    "bench": (["bench", "-w", "{tmp}/a.pt", "--imgsz", "128", "--imgsz", "256"], "--imgsz", ["128", "256"]),
    "build": (["build", "--onnx", "{tmp}/a.onnx", "--onnx", "{tmp}/b.onnx"], "--onnx", ["a.onnx", "b.onnx"]),
    "demo": (["demo", "--weights", "bundled", "-w", "{tmp}/b.pt", "--out", "{tmp}/out"], "--weights", ["bundled", "b.pt"]),
    "export": (["export", "-w", "{tmp}/a.pt", "--weights", "{tmp}/b.pt", "--out", "{tmp}/out.onnx"], "--weights", ["a.pt", "b.pt"]),
    "info": (["info", "bundled", "--json", "--json"], "--json", ["--json"]),
    "parity": (["parity", "-w", "{tmp}/a.pt", "--data", "{tmp}/a.json", "--data={tmp}/b.json"], "--data", ["a.json", "b.json"]),
    "predict": (["predict", "{tmp}/x.jpg", "-w", "bundled", "--imgsz=640", "--imgsz", "448", "--out", "{tmp}/out"], "--imgsz", ["640", "448"]),
    "quantize": (["quantize", "--onnx", "{tmp}/a.onnx", "--precision", "int8", "--precision", "fp16"], "--precision", ["int8", "fp16"]),
    "serve": (["serve", "-w", "bundled", "--http-port", "8000", "--http-port", "8001"], "--http-port", ["8000", "8001"]),
    "synth": (["synth", "--out", "{tmp}/out", "--images", "1", "--out", "{tmp}/out2"], "--out", ["out", "out2"]),
    "train": (["train", "--data", "{tmp}/a.json", "--epochs", "1", "--epochs", "2", "--out", "{tmp}/out"], "--epochs", ["1", "2"]),
    "val": (["val", "--data", "{tmp}/a.json", "--thresholds", "val", "--thresholds", "demo"], "--thresholds", ["val", "demo"]),
}


def test_every_command_has_a_repeat_row() -> None:
    assert sorted(REPEATS) == COMMANDS


@pytest.mark.parametrize("command", sorted(REPEATS))
def test_scalar_option_given_twice_is_refused(command: str, tmp_path: Path) -> None:
    template, option, values = REPEATS[command]
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in template]
    result = CliRunner().invoke(app, argv)
    stderr = result.stderr.strip()
    assert result.exit_code == 2, (result.output, stderr)
    assert len(stderr.splitlines()) == 1 and "Traceback" not in result.output + stderr, stderr
    assert f"{option} given twice" in stderr, stderr
    assert all(value in stderr for value in values), stderr
    assert list(tmp_path.iterdir()) == []  # refused before any work: nothing written


def test_paired_flag_given_both_ways_is_refused() -> None:
    result = CliRunner().invoke(app, ["predict", "x.jpg", "--save-json", "--no-save-json"])
    assert result.exit_code == 2 and "--save-json given twice (--save-json, then --no-save-json)" in result.stderr


@pytest.mark.parametrize(("argv", "first"), [
    (["bench", "-w", "absent_1.pt", "-w", "absent_2.pt", "--imgsz", "128"], "absent_1.pt"),
    (["bench", "-w", "absent_1.pt,absent_2.pt", "--imgsz", "128"], "absent_1.pt"),
])
def test_list_options_still_accumulate(argv: list[str], first: str) -> None:
    """Repeats of a list option are values, not a mistake: the command runs and reports the first file."""
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and "given twice" not in result.stderr and first in result.stderr, result.stderr
