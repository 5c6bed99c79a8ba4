"""`load_engine`: choosing a backend from the file."""

from __future__ import annotations

import importlib.util

import pytest

from kapao_edge.engines import backend_for_path, load_engine
from kapao_edge.errors import EngineError, InputError


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
@pytest.mark.parametrize("suffix", [".engine", ".plan"])
def test_a_tensorrt_plan_without_tensorrt_says_what_is_needed(tmp_path, suffix: str) -> None:
    plan = tmp_path / f"model{suffix}"
    plan.write_bytes(b"\0" * 16)
    with pytest.raises(EngineError, match=r"needs TensorRT 10 or newer and a CUDA GPU: on Jetson use the TensorRT that JetPack installs"):
        load_engine(plan)


def test_suffixes_pick_backends_and_unknown_ones_are_refused(tmp_path) -> None:
    assert [backend_for_path(f"m{s}") for s in (".pt", ".onnx", ".engine", ".PLAN")] == [
        "torch", "onnxruntime", "tensorrt", "tensorrt",
    ]
    with pytest.raises(InputError, match="cannot tell the backend of m.tflite"):
        backend_for_path("m.tflite")
    with pytest.raises(InputError, match="unknown backend 'openvino'; choose one of torch, onnxruntime, tensorrt"):
        load_engine(tmp_path / "m.onnx", backend="openvino")
