"""Graph facts shared by FP16 conversion, INT8 quantization and the Q/DQ lint.

KAPAO's graph has two parts: the network (backbone, neck, one 1x1 head conv per level) and the
decode after the head convs (sigmoid, grid and anchor arithmetic, concat). Reduced precision belongs
to the network only, so every pass needs to know where that boundary lies.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any, Iterable

from kapao_edge.errors import InputError

_MODULE_INDEX = re.compile(r"model\.(\d+)\.")


def consumers_of(graph: Any) -> dict[str, list[Any]]:
    """Tensor name -> nodes that read it (in graph order)."""
    readers: dict[str, list[Any]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            if name:
                readers[name].append(node)
    return readers


def producers_of(graph: Any) -> dict[str, Any]:
    """Tensor name -> the node that writes it."""
    return {name: node for node in graph.node for name in node.output if name}


def _reachable_nodes(graph: Any, start_tensors: Iterable[str], readers: dict[str, list[Any]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start_tensors)
    while stack:
        tensor = stack.pop()
        for node in readers.get(tensor, []):
            if node.name not in seen:
                seen.add(node.name)
                stack.extend(node.output)
    return seen


def quantized_convs(graph: Any) -> set[str]:
    """Names of the Conv nodes whose weight is dequantized (Q/DQ INT8 convs)."""
    producers = producers_of(graph)
    return {
        node.name for node in graph.node
        if node.op_type == "Conv" and len(node.input) > 1
        and getattr(producers.get(node.input[1]), "op_type", None) == "DequantizeLinear"
    }


# a head conv of the cpu INT8 flavour becomes an NHWC integer matmul (cpu_graph.integer_heads)
_HEAD_OPS = ("Conv", "MatMulIntegerToFloat")


def head_convs(graph: Any) -> list[Any]:
    """The Conv nodes with no Conv downstream: KAPAO's per-level output convs, in graph order."""
    readers = consumers_of(graph)
    convs = [node for node in graph.node if node.op_type in _HEAD_OPS]
    conv_names = {node.name for node in convs}
    heads = [node for node in convs if not (_reachable_nodes(graph, node.output, readers) & conv_names)]
    if not heads:
        raise InputError("the graph has no Conv node: it is not a KAPAO network")
    return heads


def first_conv(graph: Any) -> Any:
    """The Conv that reads the graph input (the stem), where INT8 hurts most."""
    inputs = {value.name for value in graph.input}
    for node in graph.node:
        if node.op_type == "Conv" and node.input and node.input[0] in inputs:
            return node
    return next(node for node in graph.node if node.op_type == "Conv")


def decode_nodes(graph: Any) -> set[str]:
    """Names of the nodes downstream of the head convs: the decode, which stays FP32."""
    readers = consumers_of(graph)
    heads = head_convs(graph)
    return _reachable_nodes(graph, [t for node in heads for t in node.output], readers)


def network_nodes(graph: Any) -> set[str]:
    """Names of the head convs and everything they depend on: the part that may run in reduced precision."""
    producers = producers_of(graph)
    seen: set[str] = set()
    stack = [node for node in head_convs(graph)]
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        stack.extend(producers[name] for name in node.input if name in producers)
    return seen


def output_block_convs(graph: Any) -> list[str]:
    """The convs of every layer that feeds a head conv (the last C3 of each output level).

    Walks up from each head conv's input through non-Conv nodes (SiLU, Concat) to the nearest Convs and
    returns every conv of their layer groups: the block whose features the head turns into coordinates.
    """
    producers = producers_of(graph)
    group_of = {name: key for key, names in conv_groups(graph).items() for name in names}
    feeding_groups: set[str] = set()
    for head in head_convs(graph):
        stack, seen = [head.input[0]], set()
        while stack:
            node = producers.get(stack.pop())
            if node is None or node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type == "Conv":
                feeding_groups.add(group_of[node.name])
            else:
                stack.extend(name for name in node.input if name)
    return [node.name for node in graph.node if node.op_type == "Conv" and group_of[node.name] in feeding_groups]


def silu_nodes(graph: Any, conv_names: Iterable[str]) -> list[str]:
    """The Sigmoid and Mul that apply SiLU to each named conv's output (x * sigmoid(x)), in graph order.

    The cpu INT8 recipe quantizes them too, so keeping a conv in float there only helps if its SiLU
    stays float as well.
    """
    wanted = set(conv_names)
    conv_outputs = {node.output[0] for node in graph.node if node.op_type == "Conv" and node.name in wanted}
    sigmoids = {node.output[0]: node.input[0] for node in graph.node
                if node.op_type == "Sigmoid" and node.input[0] in conv_outputs}
    names = []
    for node in graph.node:
        if node.op_type == "Sigmoid" and node.output[0] in sigmoids:
            names.append(node.name)
        elif node.op_type == "Mul" and any(  # reads a sigmoid's output and that sigmoid's own input
            name in sigmoids and sigmoids[name] in node.input for name in node.input
        ):
            names.append(node.name)
    return names


def conv_groups(graph: Any) -> dict[str, list[str]]:
    """Conv node names grouped by the model layer ("model.N") their weight belongs to, in graph order.

    Exported node names are positional (node_conv2d_12); the weight initializer keeps the module path,
    so groups follow the network's layers, the unit a user can reason about.
    """
    groups: dict[str, list[str]] = {}
    for node in graph.node:
        if node.op_type != "Conv":
            continue
        match = _MODULE_INDEX.search(node.input[1]) if len(node.input) > 1 else None
        key = f"model.{match.group(1)}" if match else node.name
        groups.setdefault(key, []).append(node.name)
    return groups


def default_opset(model: Any) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise InputError("the model declares no default-domain opset")


def ensure_node_names(graph: Any) -> None:
    """Give every unnamed node a unique name: exclusion lists and reports refer to nodes by name."""
    used = {node.name for node in graph.node if node.name}
    for index, node in enumerate(graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{index}"
            while candidate in used:
                candidate += "_"
            node.name = candidate
            used.add(candidate)
