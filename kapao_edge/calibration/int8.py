"""INT8 Q/DQ ONNX through ONNX Runtime's ``quantize_static``, in two flavours.

``tensorrt``: symmetric QInt8 activations and weights, per-channel weights, Q/DQ on Conv inputs
only, float bias, decode untouched; the file passes ``lint_qdq`` or is not written.
``cpu``: the flavour ONNX Runtime's CPU kernels run fastest (QUInt8 activations, QInt8 per-channel
weights, Conv outputs quantized too so QLinearConv fuses), after ORT's pre-processing.

Calibration runs once through ``calibrate`` (ORT's own calibrator, our reader, our cache) and
``quantize_static`` then reads the cached ranges via ``calibration_cache_path`` with no data reader:
ranges are computed exactly as ``quantize_static`` would, but can be reused across runs and across
the many trial quantizations of ``--exclude auto``. (ONNX Runtime releases before that parameter
recalibrate from the same reader instead: same ranges, more time.)
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kapao_edge.calibration.cache import CalibrationStats, ort_method
from kapao_edge.calibration.cpu_graph import expand_upsamples, integer_heads, space_to_depth_stem, write_cpu_ranges
from kapao_edge.calibration.graph import (
    decode_nodes,
    first_conv,
    head_convs,
    output_block_convs,
    producers_of,
    quantized_convs,
)
from kapao_edge.calibration.lint import assert_qdq_ok
from kapao_edge.errors import EngineError, InputError

TARGETS = ("tensorrt", "cpu")
CALIBRATED_OPS = ["Conv"]  # the tensorrt flavour; recipe(target).ops per target


@dataclass(frozen=True)
class Int8Recipe:
    """quantize_static arguments of one target."""

    target: str
    activation: str  # "QInt8" | "QUInt8"
    weight: str
    reduce_range: bool
    extra_options: dict[str, Any]
    ops: tuple[str, ...] = ("Conv",)


def recipe(target: str) -> Int8Recipe:
    if target == "tensorrt":
        return Int8Recipe(
            target, "QInt8", "QInt8", False,
            {
                "ActivationSymmetric": True,
                "WeightSymmetric": True,
                "QuantizeBias": False,
                "AddQDQPairToWeight": True,
                "DedicatedQDQPair": False,  # shared pairs; non-Conv readers are routed around them below
                "OpTypesToExcludeOutputQuantization": ["Conv"],  # Q/DQ on Conv inputs only
            },
        )
    if target == "cpu":
        # Conv alone leaves SiLU (Sigmoid, Mul) in float between every QLinearConv: no faster than FP32
        # (benchmarks/int8_cpu.py, kapao_s 640: 1.02x); quantizing SiLU's elementwise ops too is what
        # lets ORT keep whole stretches in NHWC UINT8 (QLinearConv -> QLinearSigmoid -> QLinearMul).
        return Int8Recipe(target, "QUInt8", "QInt8", False, {"WeightSymmetric": True},
                          ("Conv", "Mul", "Add", "Concat", "MaxPool", "Resize", "Sigmoid"))
    raise InputError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")


def default_exclusions(model: Any, target: str = "tensorrt") -> list[str]:
    """Nodes kept in float by default.

    Both targets: the head convs (they write the decode's inputs) and the stem conv (it reads raw
    pixels), except in a ``cpu`` graph whose stem reads the space-to-depth view of the image
    (``preprocess_for_cpu``): there its 12 input channels run faster in INT8 than in float, and its
    [0, 1] input quantizes exactly.

    ``tensorrt`` also keeps the block feeding each head (``output_block_convs``): on the fourth-stage
    bundled model at 448 px, quantizing those 20 of 81 convs accounts for 1.18 of the 1.20 AP that
    INT8 loses (benchmarks/precision_parity.py; -0.02 with them float). It is the accuracy target, so
    it pays their speed.

    ``cpu`` instead keeps every decode node float: that recipe quantizes Sigmoid, Mul, Add and Concat
    for SiLU, and would otherwise quantize the decode's own, so that boxes, keypoints and scores would
    share one UINT8 scale. It is the speed target, so its output blocks stay INT8.
    """
    graph = model.graph
    stem = first_conv(graph)
    producers = producers_of(graph)
    stem_is_quantizable = target == "cpu" and getattr(producers.get(stem.input[0]), "op_type", None) == "SpaceToDepth"
    names = ([] if stem_is_quantizable else [stem.name]) + [node.name for node in head_convs(graph)]
    if target == "tensorrt":
        names += output_block_convs(graph)
    elif target == "cpu":
        decode = decode_nodes(graph)
        names += [node.name for node in graph.node if node.name in decode]
    return list(dict.fromkeys(names))


def quantize_from_stats(
    model_path: str | Path,
    stats: CalibrationStats,
    *,
    target: str,
    nodes_to_exclude: list[str],
    nodes_to_quantize: list[str] | None = None,
    images: Any = None,
    share_ranges: bool = True,
    integer_float_heads: bool = True,
) -> Any:
    """An INT8 onnx.ModelProto of ``model_path`` from cached ranges; for ``tensorrt`` it passes the lint.

    ONNX Runtime releases without ``calibration_cache_path`` recalibrate from ``images`` instead
    (the same reader, the same method, so the same ranges, only slower). ``share_ranges=False`` skips
    the cpu flavour's shared Concat/Resize ranges and ``integer_float_heads=False`` its integer head
    matmuls (the benchmark's comparison rows).
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    chosen = recipe(target)
    with tempfile.TemporaryDirectory(prefix="kapao-int8-") as work:
        out = Path(work) / "int8.onnx"
        ranges_source = _ranges_source(quantize_static, stats, images)
        if target == "cpu" and ranges_source.get("calibration_cache_path"):
            # pixels in [0, 1]; one scale across each Concat and Resize/MaxPool: copies instead of
            # requantizing (cpu_graph.py)
            graph = onnx.load(str(model_path), load_external_data=False).graph
            adjusted = write_cpu_ranges(stats.ranges, graph, nodes_to_exclude, Path(work), share=share_ranges)
            ranges_source["calibration_cache_path"] = str(adjusted)
        with quiet_ort_logs():
            quantize_static(
                str(model_path),
                str(out),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(chosen.ops),
                per_channel=True,
                reduce_range=chosen.reduce_range,
                activation_type=getattr(QuantType, chosen.activation),
                weight_type=getattr(QuantType, chosen.weight),
                nodes_to_quantize=nodes_to_quantize,
                nodes_to_exclude=list(nodes_to_exclude),
                calibrate_method=ort_method(stats.method),
                extra_options=dict(chosen.extra_options),
                **ranges_source,
            )
        model = onnx.load(str(out))
    if target == "tensorrt":
        route_non_conv_readers_around_qdq(model)
        assert_qdq_ok(model, source="the INT8 (tensorrt) graph")
    else:  # cpu: rewrites for ORT's CPU kernels (cpu_graph.py); outputs as before, or (heads) float-close
        expand_upsamples(model)
        if integer_float_heads:
            integer_heads(model)
    return model


def _ranges_source(quantize_static: Any, stats: CalibrationStats, images: Any) -> dict[str, Any]:
    if "calibration_cache_path" in inspect.signature(quantize_static).parameters:
        return {"calibration_data_reader": None, "calibration_cache_path": str(stats.ranges_path)}
    if images is None:
        raise EngineError(
            "this onnxruntime cannot quantize from cached ranges (no calibration_cache_path); upgrade onnxruntime"
        )
    images.rewind()
    return {"calibration_data_reader": images}


def route_non_conv_readers_around_qdq(model: Any) -> int:
    """Make every reader of a dequantized activation, other than a quantized Conv, read the float tensor.

    ``quantize_static`` shares one Q/DQ pair among all readers of a tensor, so a residual Add or a
    Concat beside a Conv would read INT8-rounded values; TensorRT (and the lint) want Q/DQ on Conv
    inputs only. Returns how many inputs were rerouted; orphaned Q/DQ nodes are removed.
    """
    graph = model.graph
    producers = producers_of(graph)

    def dequantized(name: str) -> bool:
        node = producers.get(name)
        return node is not None and node.op_type == "DequantizeLinear"

    int8_convs = quantized_convs(graph)
    rerouted = 0
    for node in graph.node:
        for slot, name in enumerate(node.input):
            if not dequantized(name) or (node.name in int8_convs and slot in (0, 1)):
                continue
            quantize = producers.get(producers[name].input[0])
            if quantize is not None and quantize.op_type == "QuantizeLinear":
                node.input[slot] = quantize.input[0]
                rerouted += 1
    _drop_orphans(graph)
    return rerouted


def _drop_orphans(graph: Any) -> None:
    outputs = {value.name for value in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input}
        orphans = [
            node for node in graph.node
            if node.op_type in ("QuantizeLinear", "DequantizeLinear") and not any(o in read or o in outputs for o in node.output)
        ]
        if not orphans:
            break
        for node in orphans:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def preprocess_for_cpu(model_path: str | Path, out_path: str | Path, *, space_to_depth: bool = True) -> str:
    """ORT's quantization pre-processing (shape inference, graph optimisation), then (``space_to_depth``)
    the stem as space-to-depth (cpu_graph.py); returns a note of what was done."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model_path, out_path = Path(model_path).resolve(), Path(out_path).resolve()
    # When symbolic shape inference gives up (it does on dynamo graphs), ONNX Runtime dumps
    # sym_shape_infer_temp.onnx and a uuid-named .data file into the working directory: run it in a
    # scratch directory so nothing lands in the user's.
    with tempfile.TemporaryDirectory(prefix="kapao-preprocess-") as scratch, _working_directory(scratch):
        try:
            with quiet_ort_logs():
                quant_pre_process(str(model_path), str(out_path), skip_symbolic_shape=False)
            note = "quant_pre_process: symbolic shape inference and graph optimisation"
        except Exception:  # symbolic shape inference rejects some dynamo graphs; ONNX inference still works
            with quiet_ort_logs():
                quant_pre_process(str(model_path), str(out_path), skip_symbolic_shape=True)
            note = "quant_pre_process: ONNX shape inference and graph optimisation (symbolic inference failed)"
    if not space_to_depth:
        return note
    import onnx

    model = onnx.load(str(out_path))
    if space_to_depth_stem(model) is not None:  # the stem's output shape is unchanged
        onnx.save(model, str(out_path))
        note += "; stem conv as space-to-depth + stride-1 conv"
    return note


@contextlib.contextmanager
def _working_directory(path: str | Path):
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def quiet_ort_logs():
    """quantize_static logs advice and prints per-tensor notes; they are not the user's concern."""
    root = logging.getLogger()
    previous = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(previous)
