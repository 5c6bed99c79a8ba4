"""``kapao-edge info PATH``: what a model file holds (preset, keypoints, size, strides, anchors)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from kapao_edge.commands._common import user_errors
from kapao_edge.errors import EngineError


@user_errors
def info(
    path: Annotated[
        str,
        typer.Argument(
            metavar="MODEL",
            help="A checkpoint (.pt: official KAPAO or kapao-edge), a bundled model name, an exported .onnx, "
            "or a TensorRT plan (.engine/.plan, read from its JSON sidecar; TensorRT not needed).",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Print a model file's preset, keypoint count, parameter count, strides, anchors and input size."""
    suffix = Path(path).suffix.lower()
    if suffix == ".onnx":
        details = _onnx_details(path)
        rows = _onnx_rows(details)
    elif suffix in (".engine", ".plan"):
        details = _plan_details(path)
        rows = _plan_rows(details)
    else:
        rows = _checkpoint_info(path)
        details = dict(rows)
    if as_json:
        typer.echo(json.dumps(details, indent=2, sort_keys=True))
        return
    for label, value in rows:
        typer.echo(f"{label:<14}{value}")


def _checkpoint_info(path: str) -> list[tuple[str, str]]:
    from kapao_edge.model.checkpoint import read_checkpoint

    loaded = read_checkpoint(path)
    model, meta = loaded.model, loaded.meta
    config = model.config
    input_size = meta.get("input_size") or meta.get("imgsz")
    detect = model.detect
    return [
        ("file", str(loaded.path)),
        ("format", loaded.source_format),
        ("model", f"{config['name']} (depth {config['depth_multiple']}, width {config['width_multiple']})"),
        ("preset", model.preset.name),
        ("keypoints", f"K={model.num_keypoints}"),
        ("outputs", f"No={detect.no} per row ({detect.nc} classes, {detect.num_coords} coords)"),
        ("parameters", f"{model.num_parameters():,}" + (" (fused)" if model.is_fused else "")),
        ("strides", ", ".join(str(int(s)) for s in model.stride.tolist())),
        ("anchors", _format_anchors(model)),
        ("input size", _format_size(input_size)),
        ("thresholds", _format_recommended(model.postprocess)),
    ]


def _format_recommended(values: dict[str, Any] | None) -> str:
    if not values:
        return "official presets (the model recommends nothing else)"
    from kapao_edge.postprocess.config import format_values

    return "recommends " + format_values(values)


def _onnx_details(path: str) -> dict[str, Any]:
    """Our metadata entry plus what the graph itself says (opset, shapes, size)."""
    import onnx
    from google.protobuf.message import DecodeError

    from kapao_edge.export.metadata import read_onnx_metadata

    file = Path(path)
    if not file.is_file():
        raise EngineError(f"ONNX file not found: {file}")
    try:
        proto = onnx.load(str(file), load_external_data=False)
    except (DecodeError, ValueError, OSError) as exc:
        raise EngineError(f"{file} is not an ONNX model ({type(exc).__name__}: {exc})") from None
    if not proto.graph.input or not proto.graph.output:
        raise EngineError(f"{file} is not an ONNX model (no graph inputs or outputs)")
    details: dict[str, Any] = {
        "file": str(file),
        "file_size": file.stat().st_size,
        "opset": next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None),
        "graph_input": _value_shape(proto.graph.input[0]),
        "graph_output": _value_shape(proto.graph.output[0]),
        "graph_outputs": [_value_shape(output) for output in proto.graph.output],
        "nodes": len(proto.graph.node),
    }
    text = read_onnx_metadata(proto)
    if text is None:
        details["kapao_edge"] = None
        return details
    try:
        details["kapao_edge"] = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineError(f"{file}: its kapao_edge metadata is not valid JSON ({exc})") from None
    return details


def _plan_details(path: str) -> dict[str, Any]:
    """A plan's metadata comes from the sidecar ``kapao-edge build`` wrote, so no TensorRT is needed."""
    from kapao_edge.engines.tensorrt_backend import read_sidecar, sidecar_path

    file = Path(path)
    if not file.is_file():
        raise EngineError(f"TensorRT plan not found: {file}")
    read_sidecar(file)  # validates the sidecar (present, parseable, with a profile) with one clear error
    return {"file": str(file), "file_size": file.stat().st_size,
            "kapao_edge": json.loads(sidecar_path(file).read_text(encoding="utf-8"))}


def _plan_rows(details: dict[str, Any]) -> list[tuple[str, str]]:
    meta = details["kapao_edge"]
    trt = meta.get("tensorrt", {})
    profile = trt.get("profile", {})
    shapes = ", ".join(f"{name} {'x'.join(map(str, profile[name]))}" for name in ("min", "opt", "max") if name in profile)
    return [
        ("file", details["file"]),
        ("format", f"TensorRT plan (built with TensorRT {trt.get('version', 'unknown')})"),
        ("file size", f"{details['file_size'] / 1024**2:.1f} MiB"),
        ("profile", shapes or "not recorded"),
        ("model", str(meta.get("model_name"))),
        ("preset", str(meta.get("preset"))),
        ("keypoints", f"K={meta.get('num_keypoints')}"),
        ("input shape", _format_shape(meta.get("input_shape", []))),
        ("I/O", _format_io(meta)),
        ("precision", str(meta.get("precision"))),
        ("thresholds", _format_recommended(meta.get("postprocess"))),
    ]


def _value_shape(value: Any) -> dict[str, Any]:
    dims = [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]
    return {"name": value.name, "shape": dims}


def _onnx_rows(details: dict[str, Any]) -> list[tuple[str, str]]:
    graph_in = details["graph_input"]
    rows = [
        ("file", details["file"]),
        ("format", f"ONNX (opset {details['opset']}, {details['nodes']} nodes)"),
        ("file size", f"{details['file_size'] / 1024**2:.1f} MiB"),
        ("input", f"{graph_in['name']} {_format_shape(graph_in['shape'])}"),
        ("output", "; ".join(f"{o['name']} {_format_shape(o['shape'])}" for o in details["graph_outputs"])),
    ]
    meta = details["kapao_edge"]
    if meta is None:
        rows.append(("metadata", "none (not written by kapao-edge export): pass --preset/--imgsz to run it"))
        return rows
    dynamic = [name for name in meta.get("input_shape", []) if isinstance(name, str)]
    rows += [
        ("model", str(meta.get("model_name"))),
        ("preset", str(meta.get("preset"))),
        ("keypoints", f"K={meta.get('num_keypoints')}"),
        ("input shape", _format_shape(meta.get("input_shape", []))),
        ("I/O", _format_io(meta)),
        ("dynamic axes", ", ".join(dynamic) or "none (fixed shape)"),
        ("precision", str(meta.get("precision"))),
        ("strides", ", ".join(str(s) for s in meta.get("strides", []))),
        ("rewrites", str(meta.get("rewrites", "not recorded"))),
        ("thresholds", _format_recommended(meta.get("postprocess"))),
        ("source sha256", str(meta.get("source_sha256") or "not recorded")),
        ("exported by", f"kapao-edge {meta.get('package_version')} ({meta.get('exporter', 'unknown exporter')})"),
    ]
    return rows


def _format_io(meta: dict[str, Any]) -> str:
    from kapao_edge.engines.base import EngineMetadata

    try:
        return EngineMetadata.from_dict(meta).describe_io()
    except Exception as exc:  # an edited entry: say so rather than hide the rest of the table
        return f"unreadable ({exc})"


def _format_shape(shape: list[Any]) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _format_anchors(model: Any) -> str:
    levels = []
    pixel_anchors = model.detect.anchor_grid.view(model.detect.nl, -1, 2)  # (nl, na, 2)
    for stride, level in zip(model.stride.tolist(), pixel_anchors.tolist()):
        pairs = " ".join(f"{w:g}x{h:g}" for w, h in level)
        levels.append(f"/{int(stride)}: {pairs}")
    return "; ".join(levels)


def _format_size(size: Any) -> str:
    if isinstance(size, int):
        return f"{size}x{size}"
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return f"{size[0]}x{size[1]} (HxW)"
    return "not recorded (any multiple of 64)"
