"""The deploy guide's promise: with an exported file, the runtime commands work where torch is absent
(a Jetson with only ONNX Runtime or TensorRT). Each runs in a fresh process that cannot import torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

_NO_TORCH = "import sys; sys.modules['torch'] = None; from kapao_edge.cli import app; sys.argv[0] = 'kapao-edge'; app()"


def run_without_torch(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _NO_TORCH, *args], capture_output=True, text=True, timeout=600)


def test_the_process_really_has_no_torch() -> None:
    done = subprocess.run([sys.executable, "-c", "import sys; sys.modules['torch'] = None; import torch"],
                          capture_output=True, text=True)
    assert done.returncode != 0 and "ModuleNotFoundError" in done.stderr


@pytest.mark.parametrize("command", ["info", "quantize", "predict", "val", "bench"])
def test_runtime_commands_run_without_torch(command: str, tiny_onnx: Path, synth_set: Path, tmp_path: Path) -> None:
    argv = {
        "info": ["info", str(tiny_onnx)],
        "quantize": ["quantize", "--onnx", str(tiny_onnx), "--precision", "fp16", "--out", str(tmp_path / "fp16.onnx")],
        "predict": ["predict", str(synth_set / "images"), "--engine", str(tiny_onnx), "--out", str(tmp_path / "run")],
        "val": ["val", "--data", str(synth_set / "person_keypoints.json"), "--engine", str(tiny_onnx)],
        "bench": ["bench", "--engine", str(tiny_onnx), "--iters", "2", "--warmup", "0"],
    }[command]
    done = run_without_torch(*argv)
    assert done.returncode == 0, done.stderr[-2000:]


def test_a_torch_command_says_what_it_needs(tmp_path: Path, reference_dir: Path) -> None:
    done = run_without_torch("export", "--weights", str(reference_dir / "kapao_tiny_coco_random.pt"), "--out", str(tmp_path / "m.onnx"))
    assert done.returncode == 2 and "needs PyTorch" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "m.onnx").exists()
