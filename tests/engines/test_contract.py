"""One contract, every backend that imports: same input -> the torch reference's predictions.

Models: both official-format fixture checkpoints and a freshly built kapao_s (small inputs keep it
fast). Each backend opens the artefact it deploys (torch: the checkpoint; onnxruntime: an exported
ONNX with dynamic batch and H/W; tensorrt: a plan, where TensorRT imports).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from kapao_edge.engines import load_engine
from kapao_edge.engines.torch_backend import load as load_torch
from kapao_edge.errors import EngineError, InputError

SIZES = [(256, 320), (320, 384)]  # two input sizes through one dynamic-H/W file
TOLERANCE = {"torch": 1e-5, "onnxruntime": 1e-4, "tensorrt": 1e-3}  # max abs / largest |reference|


def _backend_param(name: str, module: str | None):
    if module is not None and importlib.util.find_spec(module) is None:
        return pytest.param(name, marks=pytest.mark.skip(reason=f"{module} not installed"))
    return pytest.param(name)


BACKENDS = [_backend_param("torch", None), _backend_param("onnxruntime", "onnxruntime"), _backend_param("tensorrt", "tensorrt")]


@pytest.fixture(scope="session", params=["coco_fixture", "crowdpose_fixture", "kapao_s"])
def checkpoint(request) -> Path:
    if request.param == "kapao_s":
        return request.getfixturevalue("kapao_s_checkpoint")
    reference_dir = request.getfixturevalue("reference_dir")
    return reference_dir / f"kapao_tiny_{request.param.split('_')[0]}_random.pt"


@pytest.fixture(scope="session")
def reference_engine(checkpoint: Path):
    return load_torch(checkpoint)


def _open(backend: str, checkpoint: Path, onnx_export, *, dynamic: str = "batch+hw", imgsz=SIZES[0], batch: int = 1):
    if backend == "torch":
        return load_engine(checkpoint, backend="torch")
    onnx_path = onnx_export(checkpoint, dynamic=dynamic, imgsz=imgsz, batch=batch)
    if backend == "onnxruntime":
        return load_engine(onnx_path)
    from kapao_edge.build.tensorrt import build_plan  # only reached where tensorrt imports

    plan = onnx_path.with_suffix(".engine")  # beside its session-scoped ONNX: built once, reused
    if not plan.is_file():
        build_plan(onnx_path, plan)  # default profile: batch 1..4, sides 128..1280 where dynamic
    return load_engine(plan)


def _images(batch: int, hw: tuple[int, int], seed: int = 0) -> np.ndarray:
    from kapao_edge.export.verify import sample_batch

    return sample_batch([batch, 3, *hw], seed=seed)  # (B, 3, H, W) letterboxed scenes


def _assert_close(actual: np.ndarray, expected: np.ndarray, tolerance: float) -> None:
    assert actual.dtype == np.float32 and actual.shape == expected.shape
    scale = np.abs(expected).max()
    assert np.abs(actual.astype(np.float64) - expected).max() <= tolerance * scale


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch", [1, 3])
def test_same_predictions_as_torch_at_batch_1_and_3(backend, batch, checkpoint, reference_engine, onnx_export) -> None:
    images = _images(batch, SIZES[0])
    with _open(backend, checkpoint, onnx_export) as engine:
        _assert_close(engine(images), reference_engine(images), TOLERANCE[backend])


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_predictions_at_a_second_input_size(backend, checkpoint, reference_engine, onnx_export) -> None:
    images = _images(2, SIZES[1], seed=5)
    with _open(backend, checkpoint, onnx_export) as engine:
        predictions = engine(images)
        assert predictions.shape[1] == 3 * sum((SIZES[1][0] // s) * (SIZES[1][1] // s) for s in (8, 16, 32, 64))
        _assert_close(predictions, reference_engine(images), TOLERANCE[backend])


@pytest.mark.parametrize("backend", BACKENDS)
def test_fixed_shape_engine_rejects_other_shapes(backend, reference_dir: Path, onnx_export) -> None:
    if backend == "torch":
        pytest.skip("torch engines take any batch and size: there is no fixed-shape torch artefact")
    checkpoint = reference_dir / "kapao_tiny_coco_random.pt"
    with _open(backend, checkpoint, onnx_export, dynamic="none", imgsz=(128, 192), batch=2) as engine:
        assert engine.metadata.input_shape == [2, 3, 128, 192]
        assert engine(_images(2, (128, 192))).shape == (2, 3 * (16 * 24 + 8 * 12 + 4 * 6 + 2 * 3), 57)
        with pytest.raises(InputError, match="built for 128x192 inputs, got 256x320"):
            engine(_images(2, (256, 320)))
        with pytest.raises(InputError, match="built for batch 2, got 1"):
            engine(_images(1, (128, 192)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: np.zeros((1, 3, 128, 128), np.float64), "expects float32 images"),
        (lambda: np.zeros((1, 3, 128, 128), np.uint8), "expects float32 images"),
        (lambda: np.zeros((3, 128, 128), np.float32), r"shaped \(B, 3, H, W\)"),
        (lambda: np.zeros((1, 4, 128, 128), np.float32), r"shaped \(B, 3, H, W\)"),
        (lambda: np.zeros((1, 3, 100, 128), np.float32), "multiples of 64"),
        (lambda: np.zeros((0, 3, 128, 128), np.float32), "empty batch"),
        (lambda: [[0.0]], "expects a NumPy array"),
    ],
)
def test_bad_inputs_are_rejected_clearly(backend, make, message, reference_dir: Path, onnx_export) -> None:
    with _open(backend, reference_dir / "kapao_tiny_coco_random.pt", onnx_export) as engine:
        with pytest.raises(InputError, match=message):
            engine(make())


@pytest.mark.parametrize("backend", BACKENDS)
def test_context_manager_closes_the_engine(backend, reference_dir: Path, onnx_export) -> None:
    with _open(backend, reference_dir / "kapao_tiny_coco_random.pt", onnx_export) as engine:
        assert engine(_images(1, (128, 128))).shape == (1, 1020, 57)
    with pytest.raises(EngineError, match="closed"):
        engine(_images(1, (128, 128)))
    engine.close()  # a second close is harmless
