"""Q/DQ lint: the rules an explicitly quantized ONNX must follow for TensorRT's strongly typed INT8.

TensorRT fuses DequantizeLinear into the Conv that reads it and needs symmetric scales, per-tensor
activations and per-channel (axis 0) weights; a Q/DQ pair anywhere else either fails the build or
silently quantizes something that must not be (the decode shares coordinates and probabilities in
one tensor). ``lint_qdq`` lists every breach; an empty list means the graph is fit to build.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kapao_edge.calibration.graph import consumers_of, decode_nodes, default_opset, producers_of
from kapao_edge.errors import InputError

MIN_QDQ_OPSET = 17
_QDQ = ("QuantizeLinear", "DequantizeLinear")


def lint_qdq(model: Any) -> list[str]:
    """Every rule breach in ``model`` (an onnx.ModelProto), one sentence each."""
    from onnx import numpy_helper

    graph = model.graph
    problems: list[str] = []
    opset = default_opset(model)
    if opset < MIN_QDQ_OPSET:
        problems.append(f"opset {opset} < {MIN_QDQ_OPSET}")
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    readers = consumers_of(graph)
    producers = producers_of(graph)
    decode = decode_nodes(graph)
    outputs = {value.name for value in graph.output}

    for node in graph.node:
        if node.op_type not in _QDQ:
            continue
        label = f"{node.op_type} {node.name!r}"
        if node.name in decode:
            problems.append(f"{label} quantizes the decode (it lies after the head convs)")
        if len(node.input) > 2 and node.input[2]:
            zero_point = constants.get(node.input[2])
            if zero_point is None:
                problems.append(f"{label}: zero-point {node.input[2]!r} is not a constant")
            elif np.any(zero_point != 0):
                problems.append(f"{label}: non-zero zero-point (TensorRT needs symmetric quantization)")
        if any(out in outputs for out in node.output):
            problems.append(f"{label} writes a graph output")
        if node.op_type == "QuantizeLinear":
            for out in node.output:
                for reader in readers.get(out, []):
                    if reader.op_type != "DequantizeLinear":
                        problems.append(f"{label} feeds {reader.op_type} {reader.name!r}, not a DequantizeLinear")
            continue
        problems.extend(_lint_dequantize(node, label, readers, producers, constants))
    return problems


def _lint_dequantize(node: Any, label: str, readers: dict, producers: dict, constants: dict) -> list[str]:
    problems = []
    scale = constants.get(node.input[1])
    is_weight = node.input[0] in constants or _is_constant_chain(node.input[0], producers, constants)
    for out in node.output:
        for reader in readers.get(out, []):
            slots = [i for i, name in enumerate(reader.input) if name == out]
            if reader.op_type != "Conv":
                problems.append(f"{label} feeds {reader.op_type} {reader.name!r}; Q/DQ may only feed Conv inputs")
            elif any(slot > 1 for slot in slots):
                problems.append(f"{label} feeds the bias of Conv {reader.name!r}; biases must stay float")
            elif is_weight and slots != [1]:
                problems.append(f"{label} dequantizes a constant into Conv {reader.name!r} input {slots}, not its weight")
            elif not is_weight and slots != [0]:
                problems.append(f"{label} feeds an activation into Conv {reader.name!r} input {slots}")
    if scale is None:
        problems.append(f"{label}: scale {node.input[1]!r} is not a constant")
        return problems
    if is_weight:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        if scale.ndim != 1 or scale.size < 2:
            problems.append(f"{label}: weight scale is per-tensor; per-channel (axis 0) is required")
        elif axis != 0:
            problems.append(f"{label}: per-channel weight axis is {axis}, must be 0 (output channels)")
    elif scale.size != 1:
        problems.append(f"{label}: activation scale has {scale.size} values; activations must be per-tensor")
    return problems


def _is_constant_chain(name: str, producers: dict, constants: dict) -> bool:
    """A weight quantized as initializer -> QuantizeLinear -> DequantizeLinear (AddQDQPairToWeight)."""
    node = producers.get(name)
    return node is not None and node.op_type == "QuantizeLinear" and node.input[0] in constants


def assert_qdq_ok(model: Any, *, source: str = "model") -> None:
    problems = lint_qdq(model)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise InputError(f"{source} breaks the TensorRT Q/DQ rules ({len(problems)} problems): {shown}")
