"""INT8 quantization: the TensorRT flavour obeys the lint and keeps stem, heads, the blocks feeding
them and decode in float; the CPU flavour uses unsigned activations; both run on ONNX Runtime CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from kapao_edge.calibration.cache import calibrate
from kapao_edge.calibration.graph import conv_groups, decode_nodes, output_block_convs, quantized_convs
from kapao_edge.calibration.int8 import default_exclusions, quantize_from_stats, route_non_conv_readers_around_qdq
from kapao_edge.calibration.lint import lint_qdq
from kapao_edge.calibration.reader import CalibrationImages, InputSpec


@pytest.fixture(scope="module")
def stats(tiny_onnx: Path, synth_set: Path, tmp_path_factory):
    images = CalibrationImages(synth_set / "images", InputSpec.from_onnx(tiny_onnx, 128), count=4, seed=0)
    return calibrate(tiny_onnx, images, op_types=["Conv"], cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def int8_tensorrt(tiny_onnx: Path, stats):
    model = onnx.load(str(tiny_onnx))
    return quantize_from_stats(tiny_onnx, stats, target="tensorrt", nodes_to_exclude=default_exclusions(model))


def test_tensorrt_flavour_passes_the_lint(int8_tensorrt):
    assert lint_qdq(int8_tensorrt) == []
    onnx.checker.check_model(int8_tensorrt)
    zero_points = [
        numpy_helper.to_array(init) for init in int8_tensorrt.graph.initializer if init.name.endswith("zero_point")
    ]
    assert zero_points and all(zp.dtype == np.int8 and not zp.any() for zp in zero_points)


def test_stem_heads_their_feeding_blocks_and_decode_stay_float(int8_tensorrt, tiny_onnx: Path):
    source = onnx.load(str(tiny_onnx))
    excluded = default_exclusions(source)
    quantized = quantized_convs(int8_tensorrt.graph)
    all_convs = {node.name for node in int8_tensorrt.graph.node if node.op_type == "Conv"}
    groups = conv_groups(source.graph)
    feeding = {group for group, names in groups.items() if set(names) & set(output_block_convs(source.graph))}
    assert feeding == {"model.23", "model.26", "model.29", "model.32"}  # the last C3 of P3, P4, P5, P6
    assert len(excluded) == 1 + 4 + sum(len(groups[group]) for group in feeding)  # stem, heads, whole blocks
    assert quantized == all_convs - set(excluded)
    decode = decode_nodes(int8_tensorrt.graph)
    assert not any(
        node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in int8_tensorrt.graph.node if node.name in decode
    )


def test_int8_output_stays_close_to_fp32(int8_tensorrt, tiny_onnx: Path):
    import onnxruntime as ort

    images = np.random.default_rng(1).random((1, 3, 128, 128), dtype=np.float32)  # (B, 3, H, W)
    fp32 = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
    int8 = ort.InferenceSession(int8_tensorrt.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": images})[0]
    assert int8.shape == fp32.shape and int8.dtype == np.float32  # (B, N, No)
    assert np.abs(int8[..., 4] - fp32[..., 4]).max() < 0.05  # objectness
    assert not np.allclose(int8, fp32)  # something was quantized


def test_non_conv_readers_are_routed_around_shared_qdq_pairs(tiny_onnx: Path, stats):
    """Without the reroute, residual Adds and Concats beside Convs would read INT8-rounded tensors."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    out = Path(stats.ranges_path).with_name("raw.onnx")
    quantize_static(
        str(tiny_onnx), str(out), None, quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"], per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
                       "AddQDQPairToWeight": True, "OpTypesToExcludeOutputQuantization": ["Conv"]},
        calibration_cache_path=str(stats.ranges_path),
    )
    raw = onnx.load(str(out))
    assert any("feeds" in problem for problem in lint_qdq(raw))
    assert route_non_conv_readers_around_qdq(raw) > 0
    assert lint_qdq(raw) == []


def test_cpu_flavour_uses_unsigned_activations(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    from kapao_edge.calibration.int8 import recipe

    images = CalibrationImages(synth_set / "images", InputSpec.from_onnx(tiny_onnx, 128), count=2, seed=0)
    cpu_stats = calibrate(tiny_onnx, images, op_types=list(recipe("cpu").ops), cache_dir=tmp_path)
    model = quantize_from_stats(tiny_onnx, cpu_stats, target="cpu", nodes_to_exclude=[])
    activation_zero_points = [
        numpy_helper.to_array(init) for init in model.graph.initializer
        if init.name.endswith("zero_point") and init.data_type == onnx.TensorProto.UINT8
    ]
    assert activation_zero_points
    assert len(quantized_convs(model.graph)) == sum(node.op_type == "Conv" for node in model.graph.node)


def test_cpu_flavour_defaults_keep_heads_and_decode_float(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    """The cpu recipe quantizes Sigmoid/Mul/Add/Concat for SiLU; unless the decode is excluded, its own
    Sigmoid/Mul/Concat would be quantized too and boxes, keypoints and scores would share one UINT8 scale."""
    import onnxruntime as ort

    from kapao_edge.calibration.graph import first_conv, head_convs
    from kapao_edge.calibration.int8 import recipe

    source = onnx.load(str(tiny_onnx))
    excluded = default_exclusions(source, "cpu")
    assert first_conv(source.graph).name in excluded
    assert {node.name for node in head_convs(source.graph)} <= set(excluded)
    assert decode_nodes(source.graph) <= set(excluded)
    assert not set(output_block_convs(source.graph)) & set(excluded)  # the speed target quantizes them

    images = CalibrationImages(synth_set / "images", InputSpec.from_onnx(tiny_onnx, 128), count=2, seed=0)
    cpu_stats = calibrate(tiny_onnx, images, op_types=list(recipe("cpu").ops), cache_dir=tmp_path)
    model = quantize_from_stats(tiny_onnx, cpu_stats, target="cpu", nodes_to_exclude=excluded)
    decode = decode_nodes(model.graph)
    assert decode and not any(
        node.op_type in ("QuantizeLinear", "DequantizeLinear") for node in model.graph.node if node.name in decode
    )
    assert quantized_convs(model.graph)

    batch = np.random.default_rng(2).random((1, 3, 128, 128), dtype=np.float32)  # (B, 3, H, W)
    fp32 = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(None, {"images": batch})[0]
    int8 = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"images": batch})[0]
    assert np.abs(int8[..., 4] - fp32[..., 4]).max() < 0.05  # (B, N) objectness


def test_onnxruntime_without_a_calibration_cache_parameter_recalibrates_from_the_reader(stats, tiny_onnx: Path, synth_set: Path):
    from kapao_edge.calibration.int8 import _ranges_source
    from kapao_edge.errors import EngineError

    def older_quantize_static(model_input, model_output, calibration_data_reader, quant_format=None):
        """The parameter list of onnxruntime releases before the calibration cache."""

    images = CalibrationImages(synth_set / "images", InputSpec.from_onnx(tiny_onnx, 128), count=2, seed=0)
    assert _ranges_source(older_quantize_static, stats, images) == {"calibration_data_reader": images}
    with pytest.raises(EngineError, match="upgrade onnxruntime"):
        _ranges_source(older_quantize_static, stats, None)
    from onnxruntime.quantization import quantize_static

    assert _ranges_source(quantize_static, stats, images)["calibration_cache_path"] == str(stats.ranges_path)


def test_cpu_preprocessing_leaves_the_working_directory_clean(tiny_onnx: Path, tmp_path: Path, monkeypatch):
    """ONNX Runtime dumps sym_shape_infer_temp.onnx and a .data file into the cwd when symbolic shape
    inference gives up on a graph; none of that may reach the user's folder."""
    from kapao_edge.calibration.int8 import preprocess_for_cpu

    workdir = tmp_path / "user"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    out = tmp_path / "pre.onnx"
    note = preprocess_for_cpu(tiny_onnx, out)
    assert out.is_file() and "symbolic inference failed" in note  # the path that used to leave files behind
    assert list(workdir.iterdir()) == []
    assert Path.cwd() == workdir
