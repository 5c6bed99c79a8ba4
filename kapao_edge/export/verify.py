"""Numerical check of an exported file: ONNX Runtime against the torch reference on real-looking frames."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Difference:
    max_abs: float
    max_rel: float  # max_abs / the largest |reference| value


def compare(actual: np.ndarray, expected: np.ndarray) -> Difference:
    actual64 = np.asarray(actual, dtype=np.float64)
    expected64 = np.asarray(expected, dtype=np.float64)
    if actual64.shape != expected64.shape:
        return Difference(float("inf"), float("inf"))
    max_abs = float(np.abs(actual64 - expected64).max(initial=0.0))
    scale = max(float(np.abs(expected64).max(initial=0.0)), 1e-12)
    return Difference(max_abs, max_abs / scale)


def sample_frames(shape: list[int] | tuple[int, ...], preset: str = "coco", seed: int = 0) -> np.ndarray:
    """(B, H, W, 3) uint8 BGR: procedural multi-person scenes (4:3 frames) letterboxed to (H, W)."""
    from kapao_edge.data.letterbox import letterbox
    from kapao_edge.data.synth import generate_scene

    batch, _, height, width = shape
    frames = []
    for index in range(batch):
        scene = generate_scene(np.random.default_rng(seed + index), preset, imgsz=(480, 640))
        padded, _, _ = letterbox(scene.image, (height, width), auto=False)  # (H, W, 3)
        frames.append(padded)
    return np.stack(frames)  # (B, H, W, 3)


def sample_batch(shape: list[int] | tuple[int, ...], preset: str = "coco", seed: int = 0) -> np.ndarray:
    """(B, 3, H, W) float32: the same scenes as ``sample_frames``, as the float network input."""
    from kapao_edge.data.preprocess import to_tensor_batch

    return to_tensor_batch(sample_frames(shape, preset, seed))  # (B, 3, H, W)


def select_rows_numpy(predictions: np.ndarray, k: int, floor: float) -> tuple[np.ndarray, np.ndarray]:
    """The compact-output selection in NumPy: (B, N, No) -> (B, K, No) rows in row order, count (B,).

    Ties in objectness go to the lower row index, as ONNX TopK specifies.
    """
    batch, num_rows, num_outputs = predictions.shape
    objectness = predictions[..., 4]  # (B, N)
    above = objectness > floor  # (B, N)
    out = np.zeros((batch, k, num_outputs), dtype=predictions.dtype)
    for b in range(batch):
        rows = np.flatnonzero(above[b])
        chosen = rows[np.argsort(-objectness[b, rows], kind="stable")[:k]]
        chosen.sort()
        out[b, : len(chosen)] = predictions[b, chosen]
    return out, above.sum(axis=1).astype(np.int32)


def verify_onnx(reference: Any, onnx_path: str | Path, shape: list[int], *, seed: int = 0, io: Any = None) -> Difference:
    """Run the same letterboxed frames through torch (``reference``) and ONNX Runtime (CPU).

    For a compact file the rows before selection are compared with torch (a verification copy of the
    graph exposes them), and the file's selection must equal ``select_rows_numpy`` on ORT's own rows:
    comparing two top-K selections directly would fail on near-ties that float rounding reorders.
    """
    import onnxruntime as ort
    import torch

    frames = sample_frames(shape, reference_preset(reference), seed)  # (B, H, W, 3)
    uint8 = io is not None and io.input_format == "uint8"
    inputs = frames if uint8 else sample_batch(shape, reference_preset(reference), seed)
    with torch.inference_mode():
        expected = _full_predictions(reference, torch.from_numpy(inputs)).numpy()  # (B, N, No)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    compact = io is not None and io.compact
    model_bytes = _with_rows_output(onnx_path) if compact else str(onnx_path)
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {session.get_inputs()[0].name: inputs})
    if not compact:
        return compare(outputs[0], expected)  # (B, N, No)
    candidates, count, rows = outputs  # (B, K, No), (B,), (B, N, No)
    selected, expected_count = select_rows_numpy(rows, io.max_candidates, io.candidate_floor)
    if not np.array_equal(count, expected_count) or not np.array_equal(candidates, selected):
        return Difference(float("inf"), float("inf"))
    return compare(rows, expected)


def reference_preset(reference: Any) -> str:
    from kapao_edge.model.io import DeployModel

    inner = reference.model if isinstance(reference, DeployModel) else reference
    return inner.preset.name


def _full_predictions(reference: Any, inputs: Any) -> Any:
    """Every decoded row of the (possibly wrapped) reference network."""
    from kapao_edge.model.io import DeployModel, uint8_frames_to_input

    if not isinstance(reference, DeployModel):
        return reference(inputs)  # (B, N, No)
    images = uint8_frames_to_input(inputs) if reference.options.input_format == "uint8" else inputs
    return reference.model(images)  # (B, N, No)


def _with_rows_output(onnx_path: str | Path) -> bytes:
    """The compact graph, serialised with the rows before selection as a third output.

    Those rows are the data input of the GatherElements that picks the candidates.
    """
    import onnx

    model = onnx.load(str(onnx_path))
    gathers = [node for node in model.graph.node if node.op_type == "GatherElements"]
    if len(gathers) != 1:
        raise ValueError(f"expected one GatherElements in a compact graph, found {len(gathers)}")
    value = onnx.helper.make_tensor_value_info(gathers[0].input[0], onnx.TensorProto.FLOAT, None)
    model.graph.output.append(value)
    return model.SerializeToString()
