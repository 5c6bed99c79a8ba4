"""Two passes that make the ``cpu`` INT8 flavour cheaper for ONNX Runtime's CPU kernels.

Shared ranges. A Concat whose inputs carry their own scales makes ``QLinearConcat`` requantize every
input through a lookup table; with one scale it is a plain copy. A nearest Resize (or MaxPool) whose
output scale differs from its input's cannot run on UINT8 at all: ORT dequantizes, resizes in float
and quantizes again. Both only need the ranges of the tensors around those nodes to be one range,
the union of theirs, before ``quantize_static`` turns ranges into scales. The union never clips
(it contains every member's range); it only coarsens the smaller members' steps.

Conv kernel choice. MLAS runs a QLinearConv whose weights are symmetric (zero point 0) on its
direct "ConvSym" kernels and any other on im2col + QGEMM, which uses AMX or VNNI GEMM kernels where
the CPU has them. Neither wins everywhere: on kapao_s 640 (2 threads, this project's CPU) ConvSym
is 2x faster on the wide early layers, QGEMM up to 1.6x faster on stride-2 and deep layers. The
weights are symmetric in [-127, 127], so storing ``w - 1`` with zero point -1 is exact; it only
moves the conv onto the QGEMM path. ``tune_conv_kernels`` times every quantized conv both ways on
this machine and moves the ones that run clearly faster there.

Integer heads. The head convs stay out of the UINT8 graph (their outputs mix scores with box and
keypoint offsets: one UINT8 scale for all of them leaves no AP), so ORT ran each as dequantize ->
float NCHWc conv -> reorder. ``integer_heads`` turns each into ORT's ``MatMulIntegerToFloat``
(com.microsoft): UINT8 activations times per-channel INT8 weights on the QGEMM kernels, with a
float output, so the outputs keep float precision and only the weights are rounded. It reads the
NHWC layout the quantized neck already runs in, and the decode's reshape and permute are rewritten
to match (same outputs, same order).

Stem as space-to-depth. The stem is a 6x6 stride-2 conv on the 3-channel image (YOLOv5's Focus,
folded). Three input channels starve MLAS's INT8 kernels (6.0 ms on ConvSym, no better on QGEMM,
against 2.5 ms for the float NCHWc conv plus 1.6 ms to reorder and quantize its output). The same
conv is a 3x3 stride-1 conv on the 2x2 space-to-depth view of the image (12 channels), which
ConvSym runs in 1.6 ms; ``space_to_depth_stem`` rewrites it that way (exact up to float summation
order) so the ``cpu`` flavour can quantize it. Its input is quantized with the range [0, 1] that the
engine contract guarantees, so 8-bit pixels (k / 255) pass exactly (``pin_pixel_ranges``).

Upsampling by expansion. ORT's nearest Resize on UINT8 walks the output element by element (about
1 ms of a kapao_s 640 frame for three upsamples). The same upsample written as Unsqueeze -> Expand
-> Reshape on the NHWC tensor is a few block copies, ten times faster, and bit-identical;
``expand_upsamples`` rewrites each UINT8 nearest Resize that way.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from kapao_edge.calibration.graph import consumers_of, first_conv, producers_of

# ops whose output must share its input's quantization parameters for ORT to run them on UINT8
_SAME_RANGE_OPS = ("Resize", "MaxPool")
_MATMUL_SUFFIX = "_int_matmul"  # names an integer head after the conv it replaced
QGEMM_ZERO_POINT = -1  # any non-zero weight zero point selects QGEMM; -1 keeps [-127, 127] weights exact
_CLEARLY_FASTER = 0.9  # a conv moves to QGEMM only when it takes < 90% of its ConvSym time


def shared_range_groups(graph: Any, excluded: Iterable[str] = ()) -> list[list[str]]:
    """Tensor names that must share one range: each quantized Concat's inputs and output, and each
    Resize / MaxPool's data input and output; groups that share a tensor are merged. Sorted."""
    parent: dict[str, str] = {}

    def find(name: str) -> str:
        parent.setdefault(name, name)
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def union(names: list[str]) -> None:
        roots = sorted({find(name) for name in names})
        for root in roots[1:]:
            parent[root] = roots[0]

    skipped = set(excluded)
    for node in graph.node:
        if node.name in skipped:
            continue
        if node.op_type == "Concat":
            union([name for name in node.input if name] + [node.output[0]])
        elif node.op_type in _SAME_RANGE_OPS:
            union([node.input[0], node.output[0]])
    groups: dict[str, list[str]] = defaultdict(list)
    for name in parent:
        groups[find(name)].append(name)
    return sorted((sorted(members) for members in groups.values() if len(members) > 1), key=lambda g: g[0])


def space_to_depth_stem(model: Any) -> str | None:
    """Rewrite the stem (a stride-2 conv with an even kernel and even pads on the graph input) as
    ``SpaceToDepth(2) -> Conv`` with half the kernel, stride 1 and half the pads; in place.

    Out[y, x] sums w[i, j] * image[2y - P + i, 2x - P + j]; with i = 2a + p the pixel is cell
    (y - P/2 + a) of the space-to-depth plane (p, q), so the new weight holds w[:, c, 2a + p, 2b + q]
    at channel (2p + q) * C + c, ONNX's SpaceToDepth order. Returns the conv's name, or None (left
    alone) when the stem does not have that form.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    stem = first_conv(graph)
    if stem.input[0] not in {value.name for value in graph.input} or len(stem.input) < 2 \
            or stem.input[1] not in initializers:
        return None  # no conv reads the image directly (first_conv fell back), or its weight is computed
    attributes = {a.name: helper.get_attribute_value(a) for a in stem.attribute}
    weight = numpy_helper.to_array(initializers[stem.input[1]])  # (O, C, kh, kw)
    kernel = weight.shape[2:]
    pads = list(attributes.get("pads", [0, 0, 0, 0]))
    if (list(attributes.get("strides", [1, 1])) != [2, 2] or attributes.get("group", 1) != 1
            or any(d != 1 for d in attributes.get("dilations", [1, 1])) or attributes.get("auto_pad", b"NOTSET") != b"NOTSET"
            or any(k % 2 for k in kernel) or any(p % 2 for p in pads)):
        return None
    out_channels, channels = weight.shape[:2]
    folded = np.empty((out_channels, 4 * channels, kernel[0] // 2, kernel[1] // 2), weight.dtype)
    for p in range(2):
        for q in range(2):
            plane = (2 * p + q) * channels
            folded[:, plane:plane + channels] = weight[:, :, p::2, q::2]  # (O, C, kh/2, kw/2)
    weight_name = f"{stem.input[1]}_space_to_depth"
    graph.initializer.append(numpy_helper.from_array(folded, weight_name))
    view = f"{stem.input[0]}_space_to_depth"
    rearrange = helper.make_node("SpaceToDepth", [stem.input[0]], [view], name=f"{stem.name}_space_to_depth",
                                 blocksize=2)  # (B, 4C, H/2, W/2)
    stem.input[0], stem.input[1] = view, weight_name
    kept = [a for a in stem.attribute if a.name not in ("pads", "strides", "kernel_shape")]
    del stem.attribute[:]
    stem.attribute.extend(kept + [
        helper.make_attribute("kernel_shape", [k // 2 for k in kernel]),
        helper.make_attribute("pads", [p // 2 for p in pads]),
        helper.make_attribute("strides", [1, 1]),
    ])
    nodes = list(graph.node)
    nodes.insert(nodes.index(stem), rearrange)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unread(graph)
    return stem.name


def pin_pixel_ranges(ranges: Any, graph: Any) -> list[str]:
    """Set the range of the image input, and of its space-to-depth view, to [0, 1]; in place.

    The engine contract feeds pixels / 255, so scale 1/255 with zero point 0 quantizes 8-bit images
    exactly; a calibrated range (say [0.02, 0.97]) would clip the brightest pixels. Returns the names.
    """
    from onnxruntime.quantization.calibrate import TensorData

    pixels = [value.name for value in graph.input]
    pixels += [node.output[0] for node in graph.node if node.op_type == "SpaceToDepth" and node.input[0] in pixels]
    pinned = [name for name in pixels if name in ranges.data]
    for name in pinned:
        ranges.data[name] = TensorData(lowest=np.float32(0.0), highest=np.float32(1.0))
    return pinned


def unify_ranges(ranges: Any, groups: list[list[str]]) -> int:
    """Widen every calibrated tensor in a group to the group's union range, in place (ORT TensorsData).

    Returns how many tensors were widened. Tensors without a calibrated range are left alone.
    """
    from onnxruntime.quantization.calibrate import TensorData

    widened = 0
    for group in groups:
        present = [name for name in group if name in ranges.data]
        if len(present) < 2:
            continue
        lowest = min(float(np.min(ranges.data[name].range_value[0])) for name in present)
        highest = max(float(np.max(ranges.data[name].range_value[1])) for name in present)
        for name in present:
            old = ranges.data[name].range_value
            if float(np.min(old[0])) != lowest or float(np.max(old[1])) != highest:
                widened += 1
            ranges.data[name] = TensorData(lowest=np.float32(lowest), highest=np.float32(highest))
    return widened


def write_cpu_ranges(ranges: Any, graph: Any, excluded: Iterable[str], out_dir: Path, *, share: bool = True) -> Path:
    """A calibration-cache JSON of ``ranges`` (ORT TensorsData) for ``quantize_static``: pixel ranges
    pinned, and (``share``) shared ranges; the cached original is not touched."""
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

    copy = TensorsData(ranges.calibration_method, dict(ranges.data))
    pin_pixel_ranges(copy, graph)
    if share:
        unify_ranges(copy, shared_range_groups(graph, excluded))
    out = Path(out_dir) / "cpu_ranges.json"
    save_tensors_data(copy, str(out))
    return out


def _weight_dequantizers(model: Any) -> dict[str, Any]:
    """Conv name -> the DequantizeLinear node that reads its constant INT8 weight."""
    graph = model.graph
    producers = producers_of(graph)
    initializers = {init.name for init in graph.initializer}
    found = {}
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2:
            continue
        dequantize = producers.get(node.input[1])
        if dequantize is not None and dequantize.op_type == "DequantizeLinear" and dequantize.input[0] in initializers \
                and len(dequantize.input) > 2:
            found[node.name] = dequantize
    return found


def route_to_qgemm(model: Any, conv_names: Iterable[str]) -> list[str]:
    """Store the named convs' weights as ``w - 1`` with zero point -1 (exact); returns those changed."""
    from onnx import numpy_helper

    initializers = {init.name: init for init in model.graph.initializer}
    dequantizers = _weight_dequantizers(model)
    changed = []
    for name in sorted(set(conv_names)):
        dequantize = dequantizers.get(name)
        if dequantize is None:
            continue
        weight = numpy_helper.to_array(initializers[dequantize.input[0]])  # (O, C, kh, kw) int8
        zero_point = numpy_helper.to_array(initializers[dequantize.input[2]])  # (O,) int8
        if weight.dtype != np.int8 or np.any(zero_point != 0) or weight.min() < -127:
            continue  # not a symmetric [-127, 127] INT8 weight: the shift would not be exact
        shifted = (weight.astype(np.int16) + QGEMM_ZERO_POINT).astype(np.int8)
        initializers[dequantize.input[0]].CopyFrom(numpy_helper.from_array(shifted, dequantize.input[0]))
        initializers[dequantize.input[2]].CopyFrom(
            numpy_helper.from_array(np.full(zero_point.shape, QGEMM_ZERO_POINT, np.int8), dequantize.input[2]))
        changed.append(name)
    return changed


def conv_kernel_times(model: Any, input_shape: tuple[int, ...], *, runs: int = 8, warmup: int = 2,
                      threads: int | None = None) -> dict[str, float]:
    """Median kernel microseconds of every quantized Conv (by its weight tensor) in ORT's profiler."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="kapao-tune-") as work:
        path, optimized = Path(work) / "model.onnx", Path(work) / "optimized.onnx"
        onnx.save(model, str(path))
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(work) / "profile")
        options.optimized_model_filepath = str(optimized)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.random.default_rng(0).random(input_shape, dtype=np.float32)}
        for _ in range(warmup + runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
        fused = onnx.load(str(optimized), load_external_data=False)
    # ORT renames fused nodes but keeps the weight initializer: key by it (QLinearConv input 3)
    weight_of = {node.name: node.input[3] for node in fused.graph.node if node.op_type == "QLinearConv"}
    samples: dict[str, list[float]] = defaultdict(list)
    for event in events:
        name = event.get("name", "")
        if event.get("cat") == "Node" and name.endswith("_kernel_time") and name[:-12] in weight_of:
            samples[weight_of[name[:-12]]].append(float(event["dur"]))
    return {weight: float(np.median(times[warmup:])) for weight, times in samples.items() if len(times) > warmup}


def tune_conv_kernels(model: Any, input_shape: tuple[int, ...], *, threads: int | None = None) -> dict[str, Any]:
    """Move each quantized conv that runs clearly faster on QGEMM there, in place; returns the timings.

    Timing decides only which kernel runs: the arithmetic is exact either way, so the file's outputs
    do not depend on the choice.
    """
    import onnx

    dequantizers = _weight_dequantizers(model)
    weight_to_conv = {dq.input[0]: conv for conv, dq in dequantizers.items()}
    trial = onnx.ModelProto()
    trial.CopyFrom(model)
    route_to_qgemm(trial, dequantizers)
    on_convsym = conv_kernel_times(model, input_shape, threads=threads)
    on_qgemm = conv_kernel_times(trial, input_shape, threads=threads)
    faster = sorted(
        weight for weight, sym_us in on_convsym.items()
        if weight in weight_to_conv and weight in on_qgemm and on_qgemm[weight] < _CLEARLY_FASTER * sym_us
    )
    moved = route_to_qgemm(model, [weight_to_conv[weight] for weight in faster])
    chosen_us = sum(on_qgemm[w] if w in faster else us for w, us in on_convsym.items())
    return {"qgemm_convs": moved, "convsym_us": round(sum(on_convsym.values()), 1), "chosen_us": round(chosen_us, 1)}


def integer_heads(model: Any) -> list[str]:
    """Rewrite every float 1x1 conv that reads a dequantized UINT8 tensor as NHWC ``MatMulIntegerToFloat``.

    In place; returns the rewritten conv names. The weights become per-output-channel symmetric INT8
    (as ``quantize_static`` makes every other conv's). Where the conv feeds the decode's
    ``Reshape(B, na, no, H, W) -> Transpose(0, 1, 3, 4, 2)``, the pair is folded into one reshape and
    a cheaper permute of the NHWC result; otherwise the result is transposed back to NCHW.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producers, readers = producers_of(graph), consumers_of(graph)
    shapes = _static_dims(model)
    replacements: dict[str, list[Any]] = {}  # name of the first node replaced -> its new nodes
    dropped: set[str] = set()
    rewritten = []
    for conv in graph.node:
        dequantize = producers.get(conv.input[0]) if conv.op_type == "Conv" else None
        if dequantize is None or dequantize.op_type != "DequantizeLinear" or not _plain_pointwise(conv, initializers):
            continue
        if initializers.get(dequantize.input[1]) is None or not _is_uint8_scalar(initializers.get(dequantize.input[2])):
            continue
        weight = numpy_helper.to_array(initializers[conv.input[1]])[:, :, 0, 0]  # (Cout, Cin)
        bias = numpy_helper.to_array(initializers[conv.input[2]]) if len(conv.input) > 2 and conv.input[2] \
            else np.zeros(weight.shape[0], np.float32)  # (Cout,)
        scale = np.abs(weight).max(axis=1) / 127.0  # (Cout,)
        scale[scale == 0] = 1.0
        weight_int8 = np.clip(np.round(weight / scale[:, None]), -127, 127).astype(np.int8).T  # (Cin, Cout)
        prefix = f"{conv.name}_int"
        graph.initializer.extend([
            numpy_helper.from_array(np.ascontiguousarray(weight_int8), f"{prefix}_weight"),
            numpy_helper.from_array(scale.astype(np.float32), f"{prefix}_weight_scale"),
            numpy_helper.from_array(bias.astype(np.float32), f"{prefix}_bias"),
        ])
        new_nodes = [
            helper.make_node("Transpose", [dequantize.input[0]], [f"{prefix}_nhwc"], name=f"{prefix}_to_nhwc",
                             perm=[0, 2, 3, 1]),  # (B, H, W, Cin) UINT8; cancels ORT's own NHWC->NCHW transpose
            helper.make_node("MatMulIntegerToFloat",
                             [f"{prefix}_nhwc", f"{prefix}_weight", dequantize.input[1], f"{prefix}_weight_scale",
                              dequantize.input[2], "", f"{prefix}_bias"],
                             [f"{prefix}_out"], name=conv.name + _MATMUL_SUFFIX, domain="com.microsoft"),  # (B, H, W, Cout)
        ]
        permute = _decode_permute(conv, readers, initializers, shapes)
        if permute is not None:  # Reshape(B, na, no, H, W) -> Transpose(0, 1, 3, 4, 2), from NHWC instead
            reshape, transpose, size_readers, (anchors, outputs) = permute
            graph.initializer.append(numpy_helper.from_array(
                np.array([0, 0, 0, anchors, outputs], np.int64), f"{prefix}_shape"))  # 0: keep B, H, W
            new_nodes += [
                helper.make_node("Reshape", [f"{prefix}_out", f"{prefix}_shape"], [f"{prefix}_split"],
                                 name=f"{prefix}_reshape"),  # (B, H, W, na, no)
                helper.make_node("Transpose", [f"{prefix}_split"], [transpose.output[0]], name=f"{prefix}_permute",
                                 perm=[0, 3, 1, 2, 4]),  # (B, na, H, W, no)
            ]
            for reader in size_readers:  # Shape(H or W) of the conv output: the input has the same H, W
                reader.input[0] = dequantize.input[0]
            dropped |= {reshape.name, transpose.name}
        else:
            new_nodes.append(helper.make_node("Transpose", [f"{prefix}_out"], [conv.output[0]],
                                              name=f"{prefix}_to_nchw", perm=[0, 3, 1, 2]))  # (B, Cout, H, W)
        replacements[conv.name] = new_nodes
        rewritten.append(conv.name)
    if not rewritten:
        return []
    nodes = []
    for node in graph.node:
        if node.name in replacements:
            nodes.extend(replacements[node.name])
        elif node.name not in dropped:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    _drop_unread(graph)
    if not any(entry.domain == "com.microsoft" for entry in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return rewritten


def integer_head_sources(model: Any) -> list[str]:
    """Names of the convs that ``integer_heads`` rewrote in this model, in graph order."""
    return [node.name[: -len(_MATMUL_SUFFIX)] for node in model.graph.node
            if node.op_type == "MatMulIntegerToFloat" and node.name.endswith(_MATMUL_SUFFIX)]


def _plain_pointwise(conv: Any, initializers: dict[str, Any]) -> bool:
    """A float 1x1 conv, stride 1, no padding, no groups, with constant weights: a per-pixel matmul."""
    from onnx import helper

    weight = initializers.get(conv.input[1]) if len(conv.input) > 1 else None
    if weight is None or len(weight.dims) != 4 or tuple(weight.dims[2:]) != (1, 1) or weight.data_type != 1:
        return False
    if len(conv.input) > 2 and conv.input[2] and conv.input[2] not in initializers:
        return False
    attributes = {attr.name: helper.get_attribute_value(attr) for attr in conv.attribute}
    return (all(value == 1 for value in attributes.get("strides", [1, 1]))
            and all(value == 0 for value in attributes.get("pads", [0, 0, 0, 0]))
            and attributes.get("group", 1) == 1
            and attributes.get("auto_pad", b"NOTSET") in (b"NOTSET", b"VALID"))


def _is_uint8_scalar(zero_point: Any) -> bool:
    return zero_point is not None and zero_point.data_type == 2 and int(np.prod(zero_point.dims)) == 1


def _decode_permute(conv: Any, readers: dict[str, list[Any]], initializers: dict[str, Any],
                    shapes: dict[str, list[int | None]]) -> Any:
    """The decode's ``Reshape(B, na, no, H, W) -> Transpose(0, 1, 3, 4, 2)`` after a head conv, or None.

    Returns (reshape, transpose, size readers, (na, no)). Size readers are ``Shape`` nodes that take
    only the conv output's H or W (a dynamic-shape export computes its grid from them). ``na`` and
    ``no`` come from the reshape's constant shape or, in dynamic graphs, from its inferred static dims.
    """
    from onnx import helper, numpy_helper

    after = readers.get(conv.output[0], [])
    reshapes = [node for node in after if node.op_type == "Reshape"]
    size_readers = [node for node in after if node.op_type == "Shape" and _reads_only_spatial_dims(node)]
    if len(reshapes) != 1 or len(reshapes) + len(size_readers) != len(after):
        return None
    reshape = reshapes[0]
    later = readers.get(reshape.output[0], [])
    if len(later) != 1 or later[0].op_type != "Transpose":
        return None
    perm = [helper.get_attribute_value(attr) for attr in later[0].attribute if attr.name == "perm"]
    if not perm or list(perm[0]) != [0, 1, 3, 4, 2]:
        return None
    if reshape.input[1] in initializers:
        dims = [int(value) for value in numpy_helper.to_array(initializers[reshape.input[1]])]
    else:
        dims = shapes.get(reshape.output[0]) or []
    if len(dims) != 5 or dims[1] is None or dims[2] is None or dims[1] <= 0 or dims[2] <= 0:
        return None
    return reshape, later[0], size_readers, (dims[1], dims[2])


def _reads_only_spatial_dims(shape_node: Any) -> bool:
    """Whether a ``Shape`` node's [start, end) of a 4-D tensor lies within H, W (axes 2 and 3)."""
    from onnx import helper

    attributes = {attr.name: helper.get_attribute_value(attr) for attr in shape_node.attribute}
    start, end = attributes.get("start", 0), attributes.get("end", 4)
    start, end = start + 4 if start < 0 else start, end + 4 if end < 0 else end
    return 2 <= start < end <= 4


def _static_dims(model: Any) -> dict[str, list[int | None]]:
    """Tensor name -> its dims (None where symbolic), from the model's value_info or ONNX inference."""
    from onnx import shape_inference

    try:
        values = shape_inference.infer_shapes(model).graph.value_info
    except Exception:  # inference is only a hint here: without it, fewer rewrites apply
        values = model.graph.value_info
    return {value.name: [dim.dim_value if dim.HasField("dim_value") else None
                         for dim in value.type.tensor_type.shape.dim] for value in values}


def _drop_unread(graph: Any) -> None:
    """Remove nodes and initializers nothing reads any more (the replaced convs' DQs and weights)."""
    outputs = {value.name for value in graph.output}
    while True:
        read = {name for node in graph.node for name in node.input} | outputs
        unread = [node for node in graph.node if not any(name in read for name in node.output)]
        if not unread:
            break
        for node in unread:
            graph.node.remove(node)
    read = {name for node in graph.node for name in node.input}
    kept = [init for init in graph.initializer if init.name in read]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def expand_upsamples(model: Any) -> list[str]:
    """Rewrite each UINT8 nearest Resize by integer factors (``DQ -> Resize -> Q`` with one scale) as
    ``Transpose -> Unsqueeze -> Expand -> Reshape -> Transpose`` on the UINT8 tensor; in place.

    The transposes to and from NHWC cancel against the ones ORT puts around its NHWC QLinearConvs.
    The output shape is computed at run time, so dynamic H and W work. Returns the rewritten names.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    producers, readers = producers_of(graph), consumers_of(graph)
    replacements: dict[str, list[Any]] = {}
    dropped: set[str] = set()
    for resize in graph.node:
        if resize.op_type != "Resize":
            continue
        dequantize, after = producers.get(resize.input[0]), readers.get(resize.output[0], [])
        if dequantize is None or dequantize.op_type != "DequantizeLinear" or len(after) != 1 \
                or after[0].op_type != "QuantizeLinear" or not _same_quantization(dequantize, after[0], initializers):
            continue
        quantize = after[0]
        factors = _nearest_integer_factors(resize, initializers)
        if factors is None:
            continue
        fh, fw = factors
        prefix = f"{resize.name}_expand"
        graph.initializer.extend([
            numpy_helper.from_array(np.array([2, 4], np.int64), f"{prefix}_axes"),
            numpy_helper.from_array(np.array([1, 1, fh, 1, fw, 1], np.int64), f"{prefix}_repeats"),
            numpy_helper.from_array(np.array([1, fh, fw, 1], np.int64), f"{prefix}_factors"),
        ])
        replacements[resize.name] = [
            helper.make_node("Transpose", [dequantize.input[0]], [f"{prefix}_nhwc"], perm=[0, 2, 3, 1],
                             name=f"{prefix}_to_nhwc"),  # (N, H, W, C) UINT8
            helper.make_node("Unsqueeze", [f"{prefix}_nhwc", f"{prefix}_axes"], [f"{prefix}_cells"],
                             name=f"{prefix}_unsqueeze"),  # (N, H, 1, W, 1, C)
            helper.make_node("Expand", [f"{prefix}_cells", f"{prefix}_repeats"], [f"{prefix}_blocks"],
                             name=f"{prefix}_expand"),  # (N, H, fh, W, fw, C)
            helper.make_node("Shape", [f"{prefix}_nhwc"], [f"{prefix}_in_shape"], name=f"{prefix}_shape"),
            helper.make_node("Mul", [f"{prefix}_in_shape", f"{prefix}_factors"], [f"{prefix}_out_shape"],
                             name=f"{prefix}_out_shape"),  # [N, fh H, fw W, C]
            helper.make_node("Reshape", [f"{prefix}_blocks", f"{prefix}_out_shape"], [f"{prefix}_up"],
                             name=f"{prefix}_reshape"),  # (N, fh H, fw W, C)
            helper.make_node("Transpose", [f"{prefix}_up"], [quantize.output[0]], perm=[0, 3, 1, 2],
                             name=f"{prefix}_to_nchw"),  # (N, C, fh H, fw W) UINT8, the Q's old output
        ]
        dropped.add(quantize.name)
    if replacements:
        nodes = []
        for node in graph.node:
            if node.name in replacements:
                nodes.extend(replacements[node.name])
            elif node.name not in dropped:
                nodes.append(node)
        del graph.node[:]
        graph.node.extend(nodes)
        _drop_unread(graph)
    return sorted(replacements)


def _same_quantization(dequantize: Any, quantize: Any, initializers: dict[str, Any]) -> bool:
    """Whether a DQ and a Q use equal constant scale and zero point (so UINT8 in = UINT8 out)."""
    from onnx import numpy_helper

    if len(dequantize.input) < 3 or len(quantize.input) < 3:
        return False
    pairs = zip(dequantize.input[1:3], quantize.input[1:3])
    return all(a in initializers and b in initializers
               and np.array_equal(numpy_helper.to_array(initializers[a]), numpy_helper.to_array(initializers[b]))
               and initializers[a].data_type == initializers[b].data_type for a, b in pairs)


def _nearest_integer_factors(resize: Any, initializers: dict[str, Any]) -> tuple[int, int] | None:
    """(fh, fw) of a nearest Resize by constant integer scales on H and W, else None."""
    from onnx import helper, numpy_helper

    attributes = {attr.name: helper.get_attribute_value(attr) for attr in resize.attribute}
    if attributes.get("mode", b"nearest") != b"nearest" \
            or attributes.get("coordinate_transformation_mode", b"half_pixel") != b"asymmetric" \
            or attributes.get("nearest_mode", b"round_prefer_floor") != b"floor":
        return None  # only torch's export of nearest upsampling: out[i] = in[floor(i / f)]
    if len(resize.input) < 3 or resize.input[2] not in initializers or (len(resize.input) > 3 and resize.input[3]):
        return None  # sizes instead of scales: the factor depends on the input
    factors = [float(value) for value in numpy_helper.to_array(initializers[resize.input[2]]).ravel()]
    if len(factors) != 4 or factors[:2] != [1.0, 1.0] or any(f < 1 or f != int(f) for f in factors[2:]):
        return None
    return int(factors[2]), int(factors[3])
