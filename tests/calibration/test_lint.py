"""The Q/DQ lint on hand-built graphs: one that follows every rule, and one per broken rule."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kapao_edge.calibration.lint import assert_qdq_ok, lint_qdq
from kapao_edge.errors import InputError


def _qdq_model(
    *,
    activation_zero_point: int = 0,
    activation_scale_size: int = 1,
    weight_axis: int = 0,
    weight_per_tensor: bool = False,
    opset: int = 17,
    dq_feeds_add: bool = False,
    quantize_decode: bool = False,
) -> onnx.ModelProto:
    """x -> Q/DQ -> Conv (weights through Q/DQ, float bias) -> Sigmoid -> y: a one-level "KAPAO"."""
    channels_in, channels_out = 3, 4
    weight = np.random.default_rng(0).standard_normal((channels_out, channels_in, 1, 1)).astype(np.float32)
    weight_scale = np.full(1 if weight_per_tensor else channels_out, 0.02, np.float32)
    act_scale = np.full(activation_scale_size, 0.01, np.float32).reshape(() if activation_scale_size == 1 else (-1,))
    initializers = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.zeros(channels_out, np.float32), "b"),
        numpy_helper.from_array(act_scale, "x_scale"),
        numpy_helper.from_array(np.full(act_scale.shape, activation_zero_point, np.int8), "x_zp"),
        numpy_helper.from_array(weight_scale if not weight_per_tensor else weight_scale.reshape(()), "w_scale"),
        numpy_helper.from_array(np.zeros(weight_scale.shape, np.int8).reshape(() if weight_per_tensor else (-1,)), "w_zp"),
    ]
    channel_axis = 1 if activation_scale_size > 1 else None
    act_attrs = {"axis": channel_axis} if channel_axis is not None else {}
    weight_attrs = {} if weight_per_tensor else {"axis": weight_axis}
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_scale", "x_zp"], ["x_q"], name="x_Q", **act_attrs),
        helper.make_node("DequantizeLinear", ["x_q", "x_scale", "x_zp"], ["x_dq"], name="x_DQ", **act_attrs),
        helper.make_node("QuantizeLinear", ["w", "w_scale", "w_zp"], ["w_q"], name="w_Q", **weight_attrs),
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_dq"], name="w_DQ", **weight_attrs),
        helper.make_node("Conv", ["x_dq", "w_dq", "b"], ["head"], name="head_conv"),
    ]
    decode_input = "head"
    if quantize_decode:
        initializers += [
            numpy_helper.from_array(np.array(0.1, np.float32), "h_scale"),
            numpy_helper.from_array(np.array(0, np.int8), "h_zp"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["head", "h_scale", "h_zp"], ["head_q"], name="head_Q"),
            helper.make_node("DequantizeLinear", ["head_q", "h_scale", "h_zp"], ["head_dq"], name="head_DQ"),
        ]
        decode_input = "head_dq"
    nodes.append(helper.make_node("Sigmoid", [decode_input], ["y"], name="decode_sigmoid"))
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels_out, 8, 8])]
    if dq_feeds_add:
        nodes.append(helper.make_node("Add", ["x_dq", "x_dq"], ["side"], name="residual_add"))
        outputs.append(helper.make_tensor_value_info("side", TensorProto.FLOAT, [1, channels_in, 8, 8]))
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, channels_in, 8, 8])], outputs, initializers
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def test_a_graph_that_follows_the_rules_passes_and_runs():
    import onnxruntime as ort

    model = _qdq_model()
    onnx.checker.check_model(model, full_check=True)
    assert lint_qdq(model) == []
    assert_qdq_ok(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    out = session.run(None, {"x": np.ones((1, 3, 8, 8), np.float32)})[0]
    assert out.shape == (1, 4, 8, 8)


@pytest.mark.parametrize(
    ("breach", "message"),
    [
        ({"activation_zero_point": 3}, "non-zero zero-point"),
        ({"activation_scale_size": 3}, "activations must be per-tensor"),
        ({"weight_per_tensor": True}, "per-channel (axis 0) is required"),
        ({"weight_axis": 1}, "must be 0"),
        ({"opset": 16}, "opset 16 < 17"),
        ({"dq_feeds_add": True}, "feeds Add 'residual_add'"),
        ({"quantize_decode": True}, "quantizes the decode"),
    ],
)
def test_each_broken_rule_is_reported(breach: dict, message: str):
    model = _qdq_model(**breach)
    problems = lint_qdq(model)
    assert any(message in problem for problem in problems), problems
    with pytest.raises(InputError, match="breaks the TensorRT Q/DQ rules"):
        assert_qdq_ok(model)
