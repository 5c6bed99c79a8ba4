"""FP32 -> FP16 ONNX with explicit types: FP16 network, FP32 decode and output, Casts at the seams.

TensorRT builds such a graph as a strongly typed network, so every tensor carries the one type it
runs in: the network's weights and activations in FP16, the decode (sigmoid, grids, anchors, concat)
and any tensor that overflows FP16 on calibration data in FP32. Written with the onnx API only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kapao_edge.calibration.graph import decode_nodes, ensure_node_names, network_nodes
from kapao_edge.errors import EngineError

FP16_MAX = 65504.0
# Keep a tensor in FP32 when calibration saw it above this: unseen images may go higher.
OVERFLOW_LIMIT = FP16_MAX / 4
# Inputs that carry the op's data type; other float inputs (Resize scales) must stay FP32.
_DATA_INPUTS = {"Resize": (0,), "Upsample": (0,), "Clip": (0, 1, 2)}


@dataclass
class Fp16Report:
    fp16_nodes: int
    fp32_nodes: int
    casts_inserted: int
    overflow_nodes: list[str] = field(default_factory=list)
    decode_nodes: int = 0


def convert_to_fp16(model: Any, *, abs_max: dict[str, float] | None = None) -> tuple[Any, Fp16Report]:
    """A new ModelProto: the network in FP16 except nodes whose outputs (per ``abs_max``) overflow."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = model.graph
    ensure_node_names(graph)
    float_tensors = _float_tensors(graph)
    initializers = {init.name: init for init in graph.initializer}

    fixed_type_ops = {"Cast", "Shape", "Size", "CastLike"}  # their output type is not the input's
    candidates = {node.name for node in graph.node if node.op_type not in fixed_type_ops} & network_nodes(graph)
    overflow = sorted(
        node.name
        for node in graph.node
        if node.name in candidates and _overflows(node, abs_max or {}, initializers)
    )
    fp16_nodes = candidates - set(overflow)

    fp16_outputs = {
        out for node in graph.node if node.name in fp16_nodes for out in node.output if out in float_tensors
    }

    def produced_fp16(tensor: str) -> bool:
        return tensor in fp16_outputs

    for node in graph.node:
        if node.name in fp16_nodes:
            _convert_attributes(node)

    new_initializers: dict[str, Any] = {}
    casts: dict[tuple[str, int], str] = {}
    cast_nodes: list[tuple[int, Any]] = []  # (insert before node index, Cast)
    for index, node in enumerate(graph.node):
        wants_fp16 = node.name in fp16_nodes
        data_inputs = _DATA_INPUTS.get(node.op_type)
        for slot, name in enumerate(node.input):
            if not name or name not in float_tensors:
                continue
            is_data = data_inputs is None or slot in data_inputs
            want = TensorProto.FLOAT16 if (wants_fp16 and is_data) else TensorProto.FLOAT
            have = TensorProto.FLOAT16 if produced_fp16(name) else TensorProto.FLOAT
            if want == have:
                continue
            if name in initializers and want == TensorProto.FLOAT16:
                copy_name = f"{name}__fp16"
                if copy_name not in new_initializers:
                    values = numpy_helper.to_array(initializers[name]).astype(np.float32)
                    clipped = np.clip(values, -FP16_MAX, FP16_MAX).astype(np.float16)
                    new_initializers[copy_name] = numpy_helper.from_array(clipped, copy_name)
                node.input[slot] = copy_name
                continue
            key = (name, want)
            if key not in casts:
                cast_out = f"{name}__to_{'fp16' if want == TensorProto.FLOAT16 else 'fp32'}"
                casts[key] = cast_out
                cast_nodes.append((index, helper.make_node("Cast", [name], [cast_out], name=f"cast_{cast_out}", to=want)))
            node.input[slot] = casts[key]

    output_casts = []
    for output in graph.output:
        if produced_fp16(output.name):  # a network tensor exposed as a graph output stays FP32 outside
            inner = f"{output.name}__fp16"
            for node in graph.node:
                node.output[:] = [inner if o == output.name else o for o in node.output]
                node.input[:] = [inner if i == output.name else i for i in node.input]
            output_casts.append(helper.make_node("Cast", [inner], [output.name], name=f"cast_{output.name}_out", to=TensorProto.FLOAT))

    _insert_nodes(graph, cast_nodes, output_casts)
    used = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept + [new_initializers[n] for n in sorted(new_initializers)])
    del graph.value_info[:]
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, check_type=True)
        onnx.checker.check_model(model, full_check=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError) as exc:
        raise EngineError(f"the FP16 graph is not type-consistent: {exc}") from None
    decode = decode_nodes(model.graph)
    report = Fp16Report(
        fp16_nodes=len(fp16_nodes),
        fp32_nodes=len(model.graph.node) - len(fp16_nodes) - len(cast_nodes) - len(output_casts),
        casts_inserted=len(cast_nodes) + len(output_casts),
        overflow_nodes=overflow,
        decode_nodes=len(decode),
    )
    return model, report


def _float_tensors(graph: Any) -> set[str]:
    from onnx import TensorProto

    names = set()
    for value in list(graph.input) + list(graph.value_info) + list(graph.output):
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            names.add(value.name)
    names.update(init.name for init in graph.initializer if init.data_type == TensorProto.FLOAT)
    return names


def _overflows(node: Any, abs_max: dict[str, float], initializers: dict[str, Any]) -> bool:
    from onnx import numpy_helper

    if any(abs_max.get(out, 0.0) > OVERFLOW_LIMIT for out in node.output):
        return True
    for name in node.input:
        if name in initializers and initializers[name].data_type == 1:
            values = numpy_helper.to_array(initializers[name])
            if values.size and float(np.max(np.abs(values))) > FP16_MAX:
                return True
    return False


def _convert_attributes(node: Any) -> None:
    """Constant-valued attributes that fix an output type (Constant, ConstantOfShape) follow the node."""
    from onnx import TensorProto, numpy_helper

    for attribute in node.attribute:
        if attribute.HasField("t") and attribute.t.data_type == TensorProto.FLOAT:
            values = numpy_helper.to_array(attribute.t).astype(np.float16)
            attribute.t.CopyFrom(numpy_helper.from_array(values, attribute.t.name))


def _insert_nodes(graph: Any, before: list[tuple[int, Any]], after: list[Any]) -> None:
    """Put each Cast right before its first reader, output Casts at the end: the order stays topological."""
    nodes = list(graph.node)
    by_index: dict[int, list[Any]] = {}
    for index, cast in before:
        by_index.setdefault(index, []).append(cast)
    ordered = []
    for index, node in enumerate(nodes):
        ordered.extend(by_index.get(index, []))
        ordered.append(node)
    ordered.extend(after)
    del graph.node[:]
    graph.node.extend(ordered)


def check_strong_types(model: Any) -> list[str]:
    """Tensors whose type is not stated in the graph (value_info, inputs, outputs, initializers)."""
    graph = model.graph
    typed = {v.name for v in list(graph.input) + list(graph.output) + list(graph.value_info) if v.type.tensor_type.elem_type}
    typed.update(init.name for init in graph.initializer)
    return sorted(out for node in graph.node for out in node.output if out and out not in typed)


def fp32_decode_ok(model: Any) -> bool:
    """True when every float tensor of the decode and the graph output is FP32."""
    from onnx import TensorProto

    graph = model.graph
    decode = decode_nodes(graph)
    types = {v.name: v.type.tensor_type.elem_type for v in list(graph.value_info) + list(graph.output)}
    for node in graph.node:
        if node.name in decode and node.op_type != "Cast":
            if any(types.get(out) == TensorProto.FLOAT16 for out in node.output):
                return False
    return all(out.type.tensor_type.elem_type == TensorProto.FLOAT for out in graph.output)


__all__ = ["Fp16Report", "check_strong_types", "convert_to_fp16", "fp32_decode_ok"]
