"""FP16 conversion: explicit types everywhere, FP16 network, FP32 decode and output, runs on ORT CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from kapao_edge.calibration.fp16 import OVERFLOW_LIMIT, check_strong_types, convert_to_fp16, fp32_decode_ok
from kapao_edge.calibration.graph import decode_nodes, head_convs


@pytest.fixture(scope="module")
def converted(tiny_onnx: Path):
    return convert_to_fp16(onnx.load(str(tiny_onnx)))


def _types(model) -> dict[str, int]:
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.input) + list(graph.output)}
    types.update({init.name: init.data_type for init in graph.initializer})
    return types


def test_graph_is_strongly_typed_and_valid(converted):
    model, report = converted
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True, check_type=True)
    assert check_strong_types(model) == []
    assert report.fp16_nodes > 50 and report.casts_inserted >= 5  # input cast + one per head output


def test_network_runs_fp16_and_decode_stays_fp32(converted):
    model, _ = converted
    types = _types(model)
    heads = head_convs(model.graph)
    assert all(types[head.input[1]] == TensorProto.FLOAT16 for head in heads)
    assert all(types[head.output[0]] == TensorProto.FLOAT16 for head in heads)
    decode = decode_nodes(model.graph)
    for node in model.graph.node:
        if node.name in decode and node.op_type != "Cast":
            assert all(types.get(out) != TensorProto.FLOAT16 for out in node.output), node.name
    assert fp32_decode_ok(model)
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT


def test_fp16_outputs_match_fp32_on_onnxruntime_cpu(converted, tiny_onnx: Path):
    import onnxruntime as ort

    model, _ = converted
    images = np.random.default_rng(0).random((1, 3, 128, 192), dtype=np.float32)  # (B, 3, H, W)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    fp32 = ort.InferenceSession(str(tiny_onnx), options, providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
    fp16 = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
    assert fp16.dtype == np.float32 and fp16.shape == fp32.shape  # (B, N, No)
    np.testing.assert_allclose(fp16[..., 4:6], fp32[..., 4:6], atol=5e-3)  # objectness, person class
    position_error = np.abs(fp16[..., :4] - fp32[..., :4]).max() / 192
    assert position_error < 5e-3


def test_tensors_that_overflow_on_calibration_data_stay_fp32(tiny_onnx: Path):
    model = onnx.load(str(tiny_onnx))
    victim = next(node for node in model.graph.node if node.op_type == "Conv" and node.name not in {h.name for h in head_convs(model.graph)})
    converted, report = convert_to_fp16(model, abs_max={victim.output[0]: 4 * OVERFLOW_LIMIT})
    assert report.overflow_nodes == [victim.name]
    types = _types(converted)
    kept = next(node for node in converted.graph.node if node.name == victim.name)
    assert types[kept.output[0]] == TensorProto.FLOAT
    assert types[kept.input[1]] == TensorProto.FLOAT
    onnx.checker.check_model(converted, full_check=True)
