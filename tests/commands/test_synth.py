"""``kapao-edge synth`` through the real Typer app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from kapao_edge.cli import app


def _output(result) -> str:
    text = result.output or ""
    try:
        text += result.stderr or ""
    except ValueError:  # older Click: stderr mixed into output
        pass
    return text


def test_synth_writes_a_coco_set(tmp_path: Path) -> None:
    out = tmp_path / "set"
    result = CliRunner().invoke(app, ["synth", "--out", str(out), "--images", "3", "--seed", "4",
                                      "--preset", "crowdpose", "--imgsz", "256x320", "--workers", "1"])
    assert result.exit_code == 0, _output(result)
    data = json.loads((out / "person_keypoints.json").read_text())
    assert len(data["images"]) == 3 and len(list((out / "images").glob("*.jpg"))) == 3
    assert data["images"][0]["height"] == 256 and data["images"][0]["width"] == 320
    assert len(data["categories"][0]["keypoints"]) == 14


def test_synth_rejects_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    zero = runner.invoke(app, ["synth", "--out", str(tmp_path / "a"), "--images", "0"])
    assert zero.exit_code == 2 and "--images must be at least 1, got 0" in _output(zero)
    assert not (tmp_path / "a" / "person_keypoints.json").exists()
    size = runner.invoke(app, ["synth", "--out", str(tmp_path / "b"), "--images", "1", "--imgsz", "big"])
    assert size.exit_code == 2 and "--imgsz must be N or HxW" in _output(size)
    preset = runner.invoke(app, ["synth", "--out", str(tmp_path / "c"), "--images", "1", "--preset", "mpii"])
    assert preset.exit_code == 2 and "unknown preset 'mpii'" in _output(preset)


def test_synth_video_writes_a_clip_and_its_tracks(tmp_path: Path) -> None:
    out = tmp_path / "clip"
    result = CliRunner().invoke(app, ["synth", "--video", "--out", str(out), "--frames", "5", "--seed", "2",
                                      "--imgsz", "160x240", "--max-people", "3"])
    assert result.exit_code == 0, _output(result)
    data = json.loads((out / "tracks.json").read_text())
    assert data["info"]["frames"] == 5 and len(data["frames"]) == 5
    assert (out / "video.mp4").stat().st_size > 0
    ids = {person["id"] for frame in data["frames"] for person in frame}
    assert ids and max(ids) < 3


def test_synth_video_rejects_bad_options(tmp_path: Path) -> None:
    runner = CliRunner()
    cases = [
        (["--video", "--frames", "0"], "--frames must be at least 1, got 0"),
        (["--frames", "10"], "--frames needs --video"),
        (["--video", "--images", "3"], "--images does not apply to --video"),
        (["--video", "--max-people", "0"], "--max-people must be between 1 and 30"),
        (["--video", "--imgsz", "16x16", "--frames", "2"], "image size must be at least 32x32"),
    ]
    for k, (args, message) in enumerate(cases):
        out = tmp_path / str(k)
        result = runner.invoke(app, ["synth", "--out", str(out), *args])
        text = _output(result)
        assert result.exit_code == 2 and message in text, (args, text)
        assert len(set(text.strip().splitlines())) == 1 and "Traceback" not in text  # one line (output may repeat stderr)
        assert not (out / "video.mp4").exists() and not (out / "tracks.json").exists()
