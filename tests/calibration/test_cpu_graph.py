"""The cpu INT8 flavour's speed passes: shared ranges around Concat/Resize/MaxPool, the exact weight
shift that moves a conv from MLAS's ConvSym kernels to QGEMM, the head convs as integer matmuls,
UINT8 upsamples as expands, and the stem as an INT8 conv on the space-to-depth view of the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from kapao_edge.calibration.cache import calibrate
from kapao_edge.calibration.cpu_graph import (
    QGEMM_ZERO_POINT,
    expand_upsamples,
    integer_head_sources,
    integer_heads,
    route_to_qgemm,
    shared_range_groups,
    space_to_depth_stem,
    tune_conv_kernels,
    unify_ranges,
)
from kapao_edge.calibration.graph import consumers_of, decode_nodes, first_conv, head_convs, producers_of, quantized_convs
from kapao_edge.calibration.int8 import default_exclusions, preprocess_for_cpu, quantize_from_stats, recipe
from kapao_edge.calibration.reader import CalibrationImages, InputSpec


@pytest.fixture(scope="module")
def cpu_stats(tiny_onnx: Path, synth_set: Path, tmp_path_factory):
    images = CalibrationImages(synth_set / "images", InputSpec.from_onnx(tiny_onnx, 128), count=3, seed=0)
    return calibrate(tiny_onnx, images, op_types=list(recipe("cpu").ops), cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def int8_cpu(tiny_onnx: Path, cpu_stats):
    source = onnx.load(str(tiny_onnx))
    return quantize_from_stats(tiny_onnx, cpu_stats, target="cpu", nodes_to_exclude=default_exclusions(source, "cpu"))


def _run(model, batch: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"images": batch})[0]  # (B, N, No)


def _value(model, name: str) -> np.ndarray:
    return numpy_helper.to_array(next(init for init in model.graph.initializer if init.name == name))


def test_groups_join_concat_and_resize_neighbours_but_not_the_excluded_decode(tiny_onnx: Path):
    graph = onnx.load(str(tiny_onnx)).graph
    excluded = default_exclusions(onnx.load(str(tiny_onnx)), "cpu")
    groups = shared_range_groups(graph, excluded)
    group_of = {name: index for index, group in enumerate(groups) for name in group}
    decode = decode_nodes(graph)
    concats = [node for node in graph.node if node.op_type == "Concat" and node.name not in decode]
    resizes = [node for node in graph.node if node.op_type == "Resize"]
    assert concats and resizes
    for node in concats:
        assert len({group_of[name] for name in [*node.input, node.output[0]]}) == 1
    for node in resizes:
        assert group_of[node.input[0]] == group_of[node.output[0]]
    decode_outputs = {name for node in graph.node if node.name in decode for name in node.output}
    assert not decode_outputs & set(group_of)
    assert shared_range_groups(graph, excluded) == groups  # deterministic


def test_unified_ranges_only_widen(cpu_stats, tiny_onnx: Path):
    from onnxruntime.quantization.calibrate import TensorsData

    graph = onnx.load(str(tiny_onnx)).graph
    groups = shared_range_groups(graph, default_exclusions(onnx.load(str(tiny_onnx)), "cpu"))
    before = cpu_stats.ranges
    after = TensorsData(before.calibration_method, dict(before.data))
    assert unify_ranges(after, groups) > 0
    for group in groups:
        members = [name for name in group if name in after.data]
        if not members:
            continue  # tensors the recipe never calibrates
        assert len({(float(after.data[n].lowest), float(after.data[n].highest)) for n in members}) == 1
        for name in members:
            low, high = (float(np.min(v)) for v in before.data[name].range_value)
            assert float(after.data[name].lowest) <= low and float(after.data[name].highest) >= high
    assert before.data is not after.data  # the cached ranges are untouched


def test_cpu_flavour_concats_and_resizes_see_one_scale(int8_cpu):
    """QLinearConcat copies instead of requantizing, and ORT can run the Resize on UINT8."""
    graph = int8_cpu.graph
    producers = producers_of(graph)
    readers = consumers_of(graph)
    checked = 0
    for node in graph.node:
        if node.op_type not in ("Concat", "Resize"):
            continue
        inputs = node.input if node.op_type == "Concat" else node.input[:1]
        dequantizers = [producers.get(name) for name in inputs]
        if [reader.op_type for reader in readers[node.output[0]]] != ["QuantizeLinear"] or \
                any(getattr(dq, "op_type", None) != "DequantizeLinear" for dq in dequantizers):
            continue  # the float decode
        quantize = readers[node.output[0]][0]
        scale = _value(int8_cpu, quantize.input[1])
        for dq in dequantizers:
            assert np.array_equal(_value(int8_cpu, dq.input[1]), scale)
            assert np.array_equal(_value(int8_cpu, dq.input[2]), _value(int8_cpu, quantize.input[2]))
        checked += 1
    assert checked >= 2


def test_routing_a_conv_to_qgemm_is_exact(int8_cpu):
    model = onnx.ModelProto()
    model.CopyFrom(int8_cpu)
    convs = sorted(quantized_convs(model.graph))
    moved = route_to_qgemm(model, convs)
    assert moved == convs
    producers = producers_of(model.graph)
    for node in model.graph.node:
        if node.name in moved:
            dequantize = producers[node.input[1]]
            assert np.all(_value(model, dequantize.input[2]) == QGEMM_ZERO_POINT)
            assert _value(model, dequantize.input[0]).min() >= -128
    batch = np.random.default_rng(3).random((1, 3, 128, 128), dtype=np.float32)  # (B, 3, H, W)
    assert np.array_equal(_run(model, batch), _run(int8_cpu, batch))
    assert route_to_qgemm(model, convs) == []  # already shifted: a second pass changes nothing


def test_tuning_reports_its_choice_and_keeps_the_outputs(int8_cpu):
    model = onnx.ModelProto()
    model.CopyFrom(int8_cpu)
    report = tune_conv_kernels(model, (1, 3, 128, 128))
    assert set(report["qgemm_convs"]) <= quantized_convs(model.graph)
    assert 0 < report["chosen_us"] <= report["convsym_us"]
    batch = np.random.default_rng(4).random((1, 3, 128, 128), dtype=np.float32)
    assert np.array_equal(_run(model, batch), _run(int8_cpu, batch))


def _snapped_heads(model) -> onnx.ModelProto:
    """A copy whose float head-conv weights lie on the per-channel INT8 grid ``integer_heads`` uses,
    so that rewriting them changes only the arithmetic's order, not the values."""
    snapped = onnx.ModelProto()
    snapped.CopyFrom(model)
    initializers = {init.name: init for init in snapped.graph.initializer}
    for conv in head_convs(snapped.graph):
        weight = numpy_helper.to_array(initializers[conv.input[1]])  # (Cout, Cin, 1, 1)
        scale = np.abs(weight).max(axis=(1, 2, 3), keepdims=True) / 127.0
        initializers[conv.input[1]].CopyFrom(numpy_helper.from_array(
            (np.round(weight / scale) * scale).astype(np.float32), conv.input[1]))
    return snapped


@pytest.mark.parametrize("fixed_shape", [False, True], ids=["dynamic-hw", "fixed-shape"])
def test_integer_heads_compute_the_snapped_float_heads(fixed_shape, tiny_onnx, tiny_onnx_fixed, synth_set, tmp_path):
    source = tiny_onnx_fixed if fixed_shape else tiny_onnx
    spec = InputSpec.from_onnx(source, 128)
    images = CalibrationImages(synth_set / "images", spec, count=2, seed=0)
    stats = calibrate(source, images, op_types=list(recipe("cpu").ops), cache_dir=tmp_path)
    excluded = default_exclusions(onnx.load(str(source)), "cpu")
    float_heads = quantize_from_stats(source, stats, target="cpu", nodes_to_exclude=excluded, integer_float_heads=False)
    heads = [node.name for node in head_convs(float_heads.graph)]
    snapped = _snapped_heads(float_heads)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(snapped)
    assert integer_heads(rewritten) == heads
    assert integer_head_sources(rewritten) == heads
    ops = [node.op_type for node in rewritten.graph.node]
    assert ops.count("MatMulIntegerToFloat") == len(heads) and "Conv" in ops  # the rest stays as it was
    assert [node.name for node in head_convs(rewritten.graph)] == [name + "_int_matmul" for name in heads]
    permutes = [node for node in rewritten.graph.node if node.name.endswith("_int_permute")]
    assert len(permutes) == len(heads)  # the decode's reshape and permute folded, also with dynamic H, W

    batch = np.random.default_rng(5).random((1, 3, spec.height, spec.width), dtype=np.float32)  # (B, 3, H, W)
    expected, got = _run(snapped, batch), _run(rewritten, batch)  # (B, N, No)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3)
    # and the library's own cpu file is that rewrite of the unsnapped heads: close to the float heads
    library = quantize_from_stats(source, stats, target="cpu", nodes_to_exclude=excluded)
    assert integer_head_sources(library) == heads
    objectness = (_run(library, batch)[..., 4], _run(float_heads, batch)[..., 4])  # (B, N)
    assert np.abs(objectness[0] - objectness[1]).max() < 0.02


def _upsample_graph(height: int, width: int, **resize_attributes) -> onnx.ModelProto:
    """x -> Q -> DQ -> nearest Resize x2 -> Q -> DQ -> y, one UINT8 scale: the cpu flavour's upsample."""
    from onnx import TensorProto, helper

    constants = [numpy_helper.from_array(np.array(0.05, np.float32), "scale"),
                 numpy_helper.from_array(np.array(7, np.uint8), "zero"),
                 numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "factors")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"], name="q_in"),
             helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"], name="dq_in"),
             helper.make_node("Resize", ["xd", "", "factors"], ["up"], name="upsample", mode="nearest",
                              **resize_attributes),
             helper.make_node("QuantizeLinear", ["up", "scale", "zero"], ["upq"], name="q_out"),
             helper.make_node("DequantizeLinear", ["upq", "scale", "zero"], ["y"], name="dq_out")]
    graph = helper.make_graph(nodes, "upsample", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, height, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], constants)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_upsamples_become_bit_identical_expands():
    import onnxruntime as ort

    model = _upsample_graph(5, 6, coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert expand_upsamples(rewritten) == ["upsample"]
    ops = [node.op_type for node in rewritten.graph.node]
    assert "Resize" not in ops and ops.count("Expand") == 1 and ops.count("QuantizeLinear") == 1
    x = np.random.default_rng(6).normal(size=(1, 3, 5, 6)).astype(np.float32)  # (B, C, H, W)

    def run(proto):
        return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    expected = run(model)
    assert expected.shape == (1, 3, 10, 12)
    assert np.array_equal(run(rewritten), expected)
    assert np.array_equal(expected[:, :, ::2, ::2], expected[:, :, 1::2, 1::2])  # every pixel repeated 2 x 2


def test_upsamples_other_than_torchs_nearest_stay_resizes():
    half_pixel = _upsample_graph(5, 6, coordinate_transformation_mode="half_pixel")
    assert expand_upsamples(half_pixel) == []
    assert [node.op_type for node in half_pixel.graph.node].count("Resize") == 1


def test_cpu_flavour_upsamples_by_expansion_and_keeps_dynamic_sizes(int8_cpu):
    ops = [node.op_type for node in int8_cpu.graph.node]
    assert "Resize" not in ops and ops.count("Expand") >= 2
    for height, width in ((128, 128), (192, 256)):  # the export's H, W are dynamic (multiples of 64)
        batch = np.random.default_rng(8).random((1, 3, height, width), dtype=np.float32)
        cells = sum((height // stride) * (width // stride) for stride in (8, 16, 32, 64))
        assert _run(int8_cpu, batch).shape == (1, 3 * cells, 57)  # (B, na * cells, No)


def test_an_integer_conv_outside_the_decode_pattern_returns_nchw():
    """A 1x1 conv whose output is not the decode's reshape gets its NCHW layout back."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    rng = np.random.default_rng(7)
    weight = rng.normal(size=(5, 4, 1, 1)).astype(np.float32)  # (Cout, Cin, 1, 1)
    scale = np.abs(weight).max(axis=(1, 2, 3), keepdims=True) / 127.0
    weight = (np.round(weight / scale) * scale).astype(np.float32)  # on the INT8 grid: the rewrite is exact
    constants = [numpy_helper.from_array(np.array(0.02, np.float32), "scale"),
                 numpy_helper.from_array(np.array(128, np.uint8), "zero"),
                 numpy_helper.from_array(weight, "weight"), numpy_helper.from_array(rng.normal(size=5).astype(np.float32), "bias")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["xq"], name="q"),
             helper.make_node("DequantizeLinear", ["xq", "scale", "zero"], ["xd"], name="dq"),
             helper.make_node("Conv", ["xd", "weight", "bias"], ["y"], name="pointwise")]
    graph = helper.make_graph(nodes, "pointwise", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4, 3, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    assert integer_heads(rewritten) == ["pointwise"]
    assert [node.op_type for node in rewritten.graph.node][-2:] == ["MatMulIntegerToFloat", "Transpose"]
    x = rng.normal(size=(2, 4, 3, 6)).astype(np.float32)  # (B, C, H, W)

    def run(proto):
        return ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    expected = run(model)
    assert expected.shape == (2, 5, 3, 6)
    np.testing.assert_allclose(run(rewritten), expected, rtol=1e-5, atol=1e-5)


def test_the_stem_as_space_to_depth_computes_the_same_conv(tiny_onnx: Path):
    model = onnx.load(str(tiny_onnx))
    stem = first_conv(model.graph)
    assert [a.ints for a in stem.attribute if a.name == "strides"] == [[2, 2]]
    rewritten = onnx.load(str(tiny_onnx))
    assert space_to_depth_stem(rewritten) == stem.name
    new_stem = next(node for node in rewritten.graph.node if node.name == stem.name)
    rearrange = producers_of(rewritten.graph)[new_stem.input[0]]
    assert rearrange.op_type == "SpaceToDepth" and rearrange.input[0] == "images"
    attributes = {a.name: list(a.ints) for a in new_stem.attribute if a.ints}
    old_weight = _value(model, stem.input[1])  # (O, C, k, k)
    assert attributes["strides"] == [1, 1]
    assert attributes["kernel_shape"] == [old_weight.shape[2] // 2, old_weight.shape[3] // 2]
    assert _value(rewritten, new_stem.input[1]).shape[1] == 4 * old_weight.shape[1]
    assert not any(init.name == stem.input[1] for init in rewritten.graph.initializer)  # the old weight is gone
    batch = np.random.default_rng(3).random((2, 3, 128, 192), dtype=np.float32)
    np.testing.assert_allclose(_run(rewritten, batch), _run(model, batch), rtol=1e-4, atol=1e-3)
    assert space_to_depth_stem(rewritten) is None  # the stem now has stride 1: a second pass leaves it


def test_a_stem_without_stride_two_and_an_even_kernel_is_left_alone():
    from onnx import TensorProto, helper

    def stem_graph(kernel: int, stride: int):
        weight = numpy_helper.from_array(np.ones((4, 3, kernel, kernel), np.float32), "w")
        conv = helper.make_node("Conv", ["images", "w"], ["y"], name="stem", strides=[stride, stride],
                                pads=[kernel // 2] * 4)
        graph = helper.make_graph([conv], "g", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 8, 8])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [weight])
        return helper.make_model(graph)

    for kernel, stride in ((3, 2), (6, 1), (5, 2)):
        model = stem_graph(kernel, stride)
        before = model.SerializeToString()
        assert space_to_depth_stem(model) is None
        assert model.SerializeToString() == before


def test_cpu_flavour_quantizes_the_space_to_depth_stem_with_exact_pixels(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    pre = tmp_path / "pre.onnx"
    assert "space-to-depth" in preprocess_for_cpu(tiny_onnx, pre)
    pre_model = onnx.load(str(pre))
    stem = first_conv(pre_model.graph).name
    assert stem not in default_exclusions(pre_model, "cpu")
    assert stem in default_exclusions(pre_model, "tensorrt")
    images = CalibrationImages(synth_set / "images", InputSpec.from_onnx(pre, 128), count=3, seed=0)
    stats = calibrate(pre, images, op_types=None, cache_dir=tmp_path / "cache")
    model = quantize_from_stats(pre, stats, target="cpu", nodes_to_exclude=default_exclusions(pre_model, "cpu"))
    assert stem in quantized_convs(model.graph)
    producers = producers_of(model.graph)
    conv = next(node for node in model.graph.node if node.name == stem)
    quantize = producers[producers[conv.input[0]].input[0]]  # Q -> DQ -> stem conv
    assert quantize.op_type == "QuantizeLinear" and producers[quantize.input[0]].op_type == "SpaceToDepth"
    assert _value(model, quantize.input[1]) == np.float32(1 / 255) and _value(model, quantize.input[2]) == 0
    # 8-bit pixels (k / 255) quantize back to exactly k: the input loses nothing
    levels = np.random.default_rng(4).integers(0, 256, (1, 3, 128, 128))
    pixels = levels.astype(np.float32) / 255
    assert np.array_equal(np.clip(np.round(pixels / np.float32(1 / 255)), 0, 255), levels)
