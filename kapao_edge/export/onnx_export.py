"""KAPAO -> ONNX: rewrites, torch.export (dynamo) with symbolic shapes, metadata, slim, check, verify.

The decode (sigmoid, grids, anchors) is part of the graph, so every runtime returns the same
(B, N, No) predictions as the PyTorch reference. Grids come from the runtime feature-map shapes,
so one file serves every input size that is a multiple of 64 when H/W are dynamic.
"""

from __future__ import annotations

import copy
import io
import logging
import time
import warnings
from contextlib import redirect_stdout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kapao_edge.data import check_input_size
from kapao_edge.engines.base import expected_num_rows
from kapao_edge.engines.torch_backend import metadata_for_model
from kapao_edge.errors import EngineError, InputError
from kapao_edge.export.metadata import metadata_json, set_onnx_metadata
from kapao_edge.export.rewrites import apply_rewrites
from kapao_edge.export.verify import verify_onnx
from kapao_edge.io_options import IoOptions
from kapao_edge.utils.io import atomic_path, sha256_file

DYNAMIC_MODES = ("none", "batch", "batch+hw")
INPUT_NAME = "images"
OUTPUT_NAME = "predictions"
COUNT_NAME = "num_candidates"  # compact files only: rows above the floor before selection
DEFAULT_OPSET = 19
MIN_OPSET = 18  # the dynamo exporter's own floor; older opsets would go through a lossy converter
VERIFY_TOLERANCE = 1e-4  # max |ORT - torch| relative to the largest |torch| value
_MAX_PROTO_BYTES = 2 * 1024**3  # protobuf's limit; larger weights go to an external data file
# torch.export specialises a side of one P6 cell (64 px), so dynamic sides are traced at >= 128 px.
_MIN_DYNAMIC_SIDE = 128


@dataclass
class ExportReport:
    path: str
    input_shape: list[int | str]
    output_shape: list[int | str]
    opset: int
    exporter: str
    rewrites: str
    nodes_exported: int
    nodes_final: int
    simplified: bool
    max_abs_diff: float
    max_rel_diff: float
    verified_shapes: list[list[int]]
    file_size: int
    source_sha256: str | None
    seconds: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export_onnx(
    model: Any,
    out_path: str | Path,
    *,
    imgsz: int | tuple[int, int] = 640,
    batch: int = 1,
    dynamic: str = "batch+hw",
    opset: int = DEFAULT_OPSET,
    simplify: bool = True,
    rewrite: bool = True,
    verify: bool = True,
    source_path: str | Path | None = None,
    io: IoOptions | None = None,
) -> ExportReport:
    """Export a KapaoModel to ``out_path`` atomically; raise EngineError (and leave no file) when
    ONNX Runtime disagrees with torch beyond ``VERIFY_TOLERANCE``.

    ``io`` adds the deployment I/O (uint8 input, compact output; ``kapao_edge.model.io``) to the graph.
    """
    import onnx
    import torch

    from kapao_edge.model.io import DeployModel

    started = time.perf_counter()
    height, width = check_input_size(imgsz)
    if dynamic not in DYNAMIC_MODES:
        raise InputError(f"--dynamic must be one of {', '.join(DYNAMIC_MODES)}, got {dynamic!r}")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InputError(f"batch must be a positive integer, got {batch!r}")
    if opset < MIN_OPSET:
        raise InputError(f"opset {opset} is too old for the exporter; use {MIN_OPSET} or newer (default {DEFAULT_OPSET})")
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise InputError(f"the output file must end in .onnx, got {out_path}")

    reference = copy.deepcopy(model).float().cpu().eval()
    reference.fuse()
    # rewrite=False exports the model as given (BatchNorm unfused too): the naive baseline for benchmarks.
    exported = copy.deepcopy(reference) if rewrite else copy.deepcopy(model).float().cpu().eval()
    rewrites = apply_rewrites(exported, fuse=True) if rewrite else None
    io = io or IoOptions()
    if not io.is_default:
        reference, exported = DeployModel(reference, io).eval(), DeployModel(exported, io).eval()

    dynamic_batch = dynamic in ("batch", "batch+hw")
    dynamic_hw = dynamic == "batch+hw"
    trace_shape = (
        max(batch, 2) if dynamic_batch else batch,  # a size-1 dim would be specialised
        3,
        max(height, _MIN_DYNAMIC_SIDE) if dynamic_hw else height,
        max(width, _MIN_DYNAMIC_SIDE) if dynamic_hw else width,
    )
    input_shape: list[int | str] = [
        "batch" if dynamic_batch else batch,
        3,
        "height" if dynamic_hw else height,
        "width" if dynamic_hw else width,
    ]
    num_rows: int | str = "num_rows" if dynamic_hw else expected_num_rows(height, width)
    if io.compact:
        num_rows = int(io.max_candidates)  # type: ignore[arg-type]
    num_outputs = 3 * model.num_keypoints + 6
    output_shape: list[int | str] = [input_shape[0], num_rows, num_outputs]
    uint8 = io.input_format == "uint8"
    if uint8:  # (B, H, W, 3) letterboxed BGR frames
        trace_shape = (trace_shape[0], trace_shape[2], trace_shape[3], 3)
    dynamic_shapes = _dynamic_shapes(dynamic_batch, dynamic_hw, hw_axes=(1, 2) if uint8 else (2, 3))
    output_names = [OUTPUT_NAME, COUNT_NAME] if io.compact else [OUTPUT_NAME]
    param_bytes = sum(p.numel() * p.element_size() for p in exported.parameters())
    external = param_bytes > _MAX_PROTO_BYTES

    source_sha = sha256_file(source_path) if source_path and Path(source_path).is_file() else None
    metadata = metadata_for_model(model, precision="fp32", source_sha256=source_sha)
    metadata.input_shape = input_shape
    metadata.input_format = io.input_format
    metadata.max_candidates = io.max_candidates
    metadata.candidate_floor = io.candidate_floor if io.compact else None

    with atomic_path(out_path) as tmp:
        generator = torch.Generator().manual_seed(0)
        if uint8:
            example = torch.randint(0, 256, trace_shape, dtype=torch.uint8, generator=generator)  # (B, H, W, 3)
        else:
            example = torch.rand(trace_shape, generator=generator)  # (B, 3, H, W)
        _run_exporter(
            exported, example, tmp, opset=opset, dynamic_shapes=dynamic_shapes, external=external,
            output_names=output_names,
        )
        proto = onnx.load(str(tmp), load_external_data=True)
        nodes_exported = len(proto.graph.node)
        notes: list[str] = []
        if simplify:
            proto, note = _slim(proto)
            if note:
                notes.append(note)
        graph_input_shape = metadata.graph_input_shape()
        _name_dims(proto, [graph_input_shape, output_shape, [input_shape[0]]])
        extra = {
            "kp_flip": list(model.preset.kp_flip),
            "opset": opset,
            "exporter": "torch.export (dynamo)",
            "rewrites": rewrites.summary() if rewrites else "none",
            # The size it was exported for (the model's documented size by default): what quantize
            # calibrates at and val/parity evaluate at when H and W are dynamic.
            "imgsz": [int(height), int(width)],
        }
        set_onnx_metadata(proto, metadata_json(metadata, **extra))
        onnx.save_model(proto, str(tmp), save_as_external_data=external)
        try:
            onnx.checker.check_model(str(tmp), full_check=True)
        except onnx.checker.ValidationError as exc:
            raise EngineError(f"the exported graph fails the ONNX checker: {exc}") from None
        verified: list[list[int]] = []
        max_abs = max_rel = 0.0
        if verify:
            verify_shapes = [[batch, 3, height, width]]
            if dynamic_batch and batch != trace_shape[0]:
                verify_shapes.append([trace_shape[0], 3, height, width])
            for shape in verify_shapes:
                diff = verify_onnx(reference, tmp, shape, io=io)
                max_abs, max_rel = max(max_abs, diff.max_abs), max(max_rel, diff.max_rel)
                verified.append(shape)
            if max_rel > VERIFY_TOLERANCE:
                raise EngineError(
                    f"ONNX Runtime output differs from torch: max abs {max_abs:.3g}, max relative "
                    f"{max_rel:.3g} > {VERIFY_TOLERANCE:g}; nothing was written"
                )
        nodes_final = len(proto.graph.node)
    return ExportReport(
        path=str(out_path),
        input_shape=graph_input_shape,
        output_shape=output_shape,
        opset=opset,
        exporter="torch.export (dynamo)",
        rewrites=extra["rewrites"],
        nodes_exported=nodes_exported,
        nodes_final=nodes_final,
        simplified=simplify,
        max_abs_diff=max_abs,
        max_rel_diff=max_rel,
        verified_shapes=verified,
        file_size=out_path.stat().st_size,
        source_sha256=source_sha,
        seconds=time.perf_counter() - started,
        notes=notes,
    )


def _dynamic_shapes(
    dynamic_batch: bool, dynamic_hw: bool, *, hw_axes: tuple[int, int] = (2, 3)
) -> tuple[dict[int, Any]] | None:
    """torch.export dims: H and W as 64 x (cells), so the exporter knows every level divides evenly."""
    from torch.export import Dim

    axes: dict[int, Any] = {}
    if dynamic_batch:
        axes[0] = Dim("batch", min=1, max=1024)
    if dynamic_hw:
        axes[hw_axes[0]] = 64 * Dim("height_cells", min=2, max=256)
        axes[hw_axes[1]] = 64 * Dim("width_cells", min=2, max=256)
    return (axes,) if axes else None  # positional: the network and DeployModel name their argument differently


def _run_exporter(
    model: Any, example: Any, path: Path, *, opset: int, dynamic_shapes: Any, external: bool,
    output_names: list[str],
) -> None:
    import torch

    captured = io.StringIO()
    exporter_log = logging.getLogger("torch.onnx")
    previous_level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed" notices are not ours
    try:
        with warnings.catch_warnings(), redirect_stdout(captured):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=output_names,
                dynamic_shapes=dynamic_shapes,
                opset_version=opset,
                external_data=external,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # the exporter raises many kinds; the user needs the first line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"ONNX export failed: {first}") from exc
    finally:
        exporter_log.setLevel(previous_level)


def _slim(proto: Any) -> tuple[Any, str | None]:
    """onnxslim's constant folding and dead-node removal; the unslimmed graph is kept if it fails."""
    try:
        import onnxslim
    except ImportError:
        return proto, "onnxslim is not installed: graph left as exported"
    try:
        with warnings.catch_warnings(), redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            slimmed = onnxslim.slim(proto)
    except Exception as exc:  # a slimmer failure must not block an otherwise valid export
        return proto, f"onnxslim failed ({type(exc).__name__}): graph left as exported"
    return slimmed, None


def _name_dims(proto: Any, shapes: list[list[int | str]]) -> None:
    """Readable dynamic axis names on the graph input and outputs (the exporter writes expressions)."""
    for value, shape in zip([proto.graph.input[0], *proto.graph.output], shapes):
        dims = value.type.tensor_type.shape.dim
        for dim, size in zip(dims, shape):
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
