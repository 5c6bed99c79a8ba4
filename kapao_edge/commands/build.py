"""``kapao-edge build``: a kapao-edge ONNX to a TensorRT plan plus its metadata sidecar, trtexec-like."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import console, user_errors


@user_errors
def build(
    onnx_file: Annotated[Path, typer.Option("--onnx", metavar="FILE", help="ONNX written by `kapao-edge export` or `quantize`.")],
    out: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Output plan, .engine or .plan (default: <input>.engine).")] = None,
    min_shape: Annotated[Optional[str], typer.Option(metavar="BxCxHxW", help="Smallest input BxCxHxW, e.g. 1x3x256x256.")] = None,
    opt_shape: Annotated[Optional[str], typer.Option(metavar="BxCxHxW", help="Input TensorRT tunes for; alone, a fixed-shape plan.")] = None,
    max_shape: Annotated[Optional[str], typer.Option(metavar="BxCxHxW", help="Largest input BxCxHxW. Default for dynamic axes: batch 1..4, sides 128..1280.")] = None,
    workspace_mb: Annotated[Optional[int], typer.Option(metavar="MIB", help="Builder workspace limit in MiB (default: TensorRT's).")] = None,
    timing_cache: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Timing cache file: read if present, updated after the build.")] = None,
    fp16: Annotated[bool, typer.Option("--fp16", help="TensorRT 10 only, FP32 ONNX only: let TensorRT pick FP16 kernels. For TensorRT 11 build a `quantize --precision fp16` ONNX instead.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", help="Print TensorRT's full builder log.")] = False,
) -> None:
    """Build a TensorRT plan (TensorRT 10/11, CUDA GPU); metadata goes to <plan>.json beside it."""
    from kapao_edge.build.tensorrt import build_plan, parse_shape

    shapes = {
        name: parse_shape(text, option=f"--{name}-shape") if text is not None else None
        for name, text in (("min", min_shape), ("opt", opt_shape), ("max", max_shape))
    }
    report = build_plan(
        onnx_file, out, min_shape=shapes["min"], opt_shape=shapes["opt"], max_shape=shapes["max"],
        workspace_mb=workspace_mb, timing_cache=timing_cache, fp16=fp16, verbose=verbose,
    )
    flags = ", ".join(report.flags) or "none (FP32 network)"
    console.print(
        f"wrote {report.plan_path} (TensorRT {report.tensorrt_version}, {report.plan_size / 1024**2:.1f} MiB, "
        f"{report.seconds:.1f} s)",
        markup=False,
    )
    profile = report.profile
    console.print(
        f"  profile: min {'x'.join(map(str, profile['min']))}, opt {'x'.join(map(str, profile['opt']))}, "
        f"max {'x'.join(map(str, profile['max']))}",
        markup=False,
    )
    console.print(f"  flags: {flags}", markup=False)
    console.print(f"  metadata: {report.sidecar_path}", markup=False)
    if report.timing_cache:
        console.print(f"  timing cache: {report.timing_cache}", markup=False)
