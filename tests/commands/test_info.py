"""`kapao-edge info` through the real Typer app."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from kapao_edge.cli import app

runner = CliRunner()


# parameter counts: the sum over the `_parameters` of every pickled module in each file
@pytest.mark.parametrize(
    ("name", "preset", "k", "params"),
    [("coco", "coco", 17, "832,668"), ("crowdpose", "crowdpose", 14, "823,920")],
)
def test_info_on_official_fixture(reference_dir: Path, name: str, preset: str, k: int, params: str) -> None:
    result = runner.invoke(app, ["info", str(reference_dir / f"kapao_tiny_{name}_random.pt")])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.strip() and not line.startswith("input")]
    lines = dict(row.split(None, 1) for row in rows)
    assert lines["preset"] == preset
    assert lines["keypoints"] == f"K={k}"
    assert lines["parameters"] == params
    assert lines["strides"] == "8, 16, 32, 64"
    assert "official KAPAO" in lines["format"]
    assert "/8: 19x27 44x40 38x94" in lines["anchors"]
    assert lines["thresholds"].startswith("official presets")


def test_info_on_our_format_reports_input_size(tmp_path: Path) -> None:
    from kapao_edge.model import build_model, save_checkpoint

    torch.manual_seed(0)
    path = save_checkpoint(build_model("kapao_tiny", "crowdpose"), tmp_path / "m.pt", input_size=[384, 640],
                           postprocess={"overwrite_tol": 12, "conf_thres_kp": 0.3})
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 0, result.output
    assert "kapao-edge/1" in result.stdout and "K=14" in result.stdout and "384x640" in result.stdout
    assert "recommends overwrite_tol=12, conf_thres_kp=0.3" in result.stdout


class _Payload:
    def __reduce__(self):
        return os.system, ("touch pwned-by-info",)


def _bad_files(tmp_path: Path, reference_dir: Path) -> dict[str, tuple[Path, str]]:
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Payload()}, evil)
    truncated = tmp_path / "truncated.pt"
    data = (reference_dir / "kapao_tiny_coco_random.pt").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    bare = tmp_path / "bare.pt"
    torch.save({"conv.weight": torch.zeros(2, 3, 1, 1)}, bare)
    return {
        "malicious": (evil, "refused to unpickle the global 'posix.system'"),
        "truncated": (truncated, "truncated, corrupt or not a PyTorch checkpoint"),
        "not kapao": (bare, "not a KAPAO checkpoint"),
        "missing": (tmp_path / "missing.pt", "checkpoint not found"),
        "directory": (tmp_path, "is a directory"),
        "onnx": (tmp_path / "model.onnx", "ONNX file not found"),
    }


@pytest.mark.parametrize("case", ["malicious", "truncated", "not kapao", "missing", "directory", "onnx"])
def test_info_errors_are_one_clear_line(tmp_path: Path, reference_dir: Path, monkeypatch, case: str) -> None:
    monkeypatch.chdir(tmp_path)
    path, message = _bad_files(tmp_path, reference_dir)[case]
    result = runner.invoke(app, ["info", str(path)])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert not (tmp_path / "pwned-by-info").exists()


def test_info_on_a_plan_reads_its_sidecar_without_tensorrt(tiny_onnx: Path, tmp_path: Path) -> None:
    """`info model.engine` is what a Jetson user types after `build`; it must not need TensorRT itself."""
    import onnx

    from kapao_edge.build.tensorrt import Profile, write_sidecar
    from kapao_edge.export.metadata import require_onnx_metadata

    plan = tmp_path / "model.engine"
    plan.write_bytes(b"serialized engine bytes are not read by info")
    meta = require_onnx_metadata(onnx.load(str(tiny_onnx), load_external_data=False), tiny_onnx)
    profile = Profile((1, 3, 256, 256), (1, 3, 256, 320), (2, 3, 512, 512))
    write_sidecar(plan, meta, profile, {"version": "10.3.0"})

    result = runner.invoke(app, ["info", str(plan)])
    assert result.exit_code == 0, result.output
    rows = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    assert rows["format"] == "TensorRT plan (built with TensorRT 10.3.0)"
    assert rows["profile"] == "min 1x3x256x256, opt 1x3x256x320, max 2x3x512x512"
    assert rows["keypoints"] == f"K={meta['num_keypoints']}"

    (tmp_path / "model.engine.json").unlink()
    missing = runner.invoke(app, ["info", str(plan)])
    assert missing.exit_code == 2
    assert "no metadata sidecar" in missing.stderr and "Traceback" not in missing.output
