"""``kapao-edge info PATH``: what a model file holds (preset, keypoints, size, strides, anchors)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from kapao_edge.commands._common import user_errors
from kapao_edge.errors import InputError


@user_errors
def info(
    path: Annotated[
        str, typer.Argument(help="A checkpoint (.pt: official KAPAO or kapao-edge) or a bundled model name.")
    ],
) -> None:
    """Print a model file's preset, keypoint count, parameter count, strides, anchors and input size."""
    handler = _HANDLERS.get(Path(path).suffix.lower(), _checkpoint_info)
    for label, value in handler(path):
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
    ]


def _onnx_info(path: str) -> list[tuple[str, str]]:
    raise InputError(f"{path}: ONNX info arrives with export")


_HANDLERS = {".onnx": _onnx_info}


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
