"""Graph facts on the exported tiny model: the SiLU of each conv, the blocks that feed the heads."""

from __future__ import annotations

from pathlib import Path

import onnx

from kapao_edge.calibration.graph import conv_groups, head_convs, output_block_convs, producers_of, silu_nodes


def test_every_conv_but_the_heads_has_one_sigmoid_and_one_mul_as_its_silu(tiny_onnx: Path):
    graph = onnx.load(str(tiny_onnx)).graph
    convs = [node for node in graph.node if node.op_type == "Conv"]
    heads = {node.name for node in head_convs(graph)}
    names = silu_nodes(graph, [node.name for node in convs])
    by_name = {node.name: node for node in graph.node}
    assert [by_name[name].op_type for name in names].count("Sigmoid") == len(convs) - len(heads)
    assert len(names) == 2 * (len(convs) - len(heads))  # the heads write raw logits: no SiLU
    assert silu_nodes(graph, heads) == []

    one = next(node for node in convs if node.name not in heads)
    sigmoid, mul = (by_name[name] for name in silu_nodes(graph, [one.name]))
    assert (sigmoid.op_type, mul.op_type) == ("Sigmoid", "Mul")
    assert sigmoid.input[0] == one.output[0] and set(mul.input) == {one.output[0], sigmoid.output[0]}


def test_output_blocks_are_whole_layers_that_reach_a_head_without_another_conv(tiny_onnx: Path):
    graph = onnx.load(str(tiny_onnx)).graph
    blocks = set(output_block_convs(graph))
    groups = conv_groups(graph)
    for names in groups.values():
        assert set(names) <= blocks or not set(names) & blocks  # a layer is in or out as a whole
    producers = producers_of(graph)
    for head in head_convs(graph):
        node = producers[head.input[0]]  # SiLU's Mul
        conv = producers[node.input[0]] if producers[node.input[0]].op_type == "Conv" else producers[node.input[1]]
        assert conv.op_type == "Conv" and conv.name in blocks
    assert len(blocks) < len(groups) and not blocks & {node.name for node in head_convs(graph)}
