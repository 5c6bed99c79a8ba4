"""``kapao-edge quantize``: an FP32 ONNX export to FP16 or INT8 (Q/DQ) with calibration and a report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_HELP, IMGSZ_METAVAR, check_writable, console, long_side, model_imgsz, parse_imgsz, user_errors

# Calibration-set size the default recipe was validated at (the documented ΔAP figures).
SAFE_CALIB_IMAGES = 500


@user_errors
def quantize(
    onnx_file: Annotated[Path, typer.Option("--onnx", metavar="FILE", help="FP32 ONNX written by `kapao-edge export`.")],
    precision: Annotated[str, typer.Option(metavar="fp16|int8", help="fp16 or int8.")],
    calib: Annotated[Optional[Path], typer.Option(help="Calibration images: a folder, a COCO annotations JSON or a list file.")] = None,
    calib_images: Annotated[int, typer.Option(help="Images sampled for calibration.")] = 500,
    method: Annotated[str, typer.Option(metavar="METHOD", help="INT8 calibration: meanmax (mean of per-batch min/max; robust to rare outlier images), minmax (global extremes), entropy or percentile.")] = "meanmax",
    exclude: Annotated[Optional[str], typer.Option(metavar="auto|none|NODES", help="Convs kept float: 'auto' (sensitivity pass), 'none', or NODE,NODE. Default: head convs and (tensorrt) the stem and the block feeding each head; cpu quantizes its stem as space-to-depth.")] = None,
    target: Annotated[str, typer.Option(metavar="tensorrt|cpu", help="INT8 flavour: tensorrt (symmetric Q/DQ, linted) or cpu (fastest on ONNX Runtime CPU).")] = "tensorrt",
    out: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Output .onnx (default: <input>_<precision>.onnx).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the calibration sample.")] = 0,
    imgsz: Annotated[Optional[str], typer.Option(metavar=IMGSZ_METAVAR, help=IMGSZ_HELP)] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Calibration cache folder (default: calib_cache beside the output).")] = None,
    error_goal: Annotated[float, typer.Option(help="--exclude auto: output error to reach (position fraction + score).")] = 0.01,
) -> None:
    """Convert to FP16 (FP32 decode) or INT8 Q/DQ (calibrated, cached), with metadata and a JSON report."""
    from kapao_edge.calibration import quantize_onnx

    requested = parse_imgsz(imgsz)
    _check_onnx(onnx_file)
    check_writable(out)
    size = long_side(requested or model_imgsz(onnx_file), "quantize")
    # No spinner here: the calibration progress bar is the live display while images are read.
    report = quantize_onnx(
        onnx_file, precision=precision, calib=calib, calib_images=calib_images, method=method,
        exclude=exclude, target=target, out=out, seed=seed, imgsz=size, cache_dir=cache_dir,
        error_goal=error_goal, progress=True, on_step=lambda text: console.print(f"  {text}", style="dim", markup=False),
    )
    flavour = f"int8 ({report.target})" if report.precision == "int8" else "fp16"
    console.print(f"wrote {report.path} ({flavour}, {report.file_size / 1024**2:.1f} MiB, {report.seconds:.1f} s)", markup=False)
    if report.calibration:
        cal = report.calibration
        cached = "statistics from cache" if report.from_cache else "calibrated"
        console.print(
            f"  calibration: {cal['method']}, {cal['images']} images ({cal.get('skipped', 0)} unreadable), {cached}",
            markup=False,
        )
    # Counts on the console; the node names are in the JSON report.
    details = report.details
    if report.precision == "fp16":
        console.print(
            f"  nodes in FP16: {details['fp16_nodes']}, kept in FP32: {details['fp32_nodes']} "
            f"({len(report.excluded_nodes)} for overflow), casts inserted: {details['casts_inserted']}",
            markup=False,
        )
    else:
        others = details.get("float_other_nodes", 0)
        also = f" (and {others} other nodes: decode and activation ops)" if others else ""
        console.print(f"  convs in INT8: {details['quantized_convs']}, for {report.target}", markup=False)
        console.print(f"  convs kept in float: {len(details['float_convs'])}{also}; names in the report", markup=False)
    heads = report.details.get("integer_heads")
    if heads:
        console.print(f"  head convs on INT8 matmuls with float outputs: {', '.join(heads)}", markup=False)
    kernels = report.details.get("conv_kernels")
    if kernels:
        console.print(
            f"  conv kernels: {len(kernels['qgemm_convs'])} of {report.details['quantized_convs']} convs on QGEMM, "
            f"the rest on ConvSym (timed here: {kernels['convsym_us'] / 1e3:.2f} -> {kernels['chosen_us'] / 1e3:.2f} ms)",
            markup=False,
        )
    if report.precision == "int8" and report.target == "tensorrt":
        console.print("  Q/DQ lint: passed (symmetric, per-tensor activations, per-channel weights, Conv inputs only)", markup=False)
    if report.sensitivity_path:
        console.print(f"  sensitivity ranking: {report.sensitivity_path}", markup=False)
    console.print(f"  report: {report.report_path}", markup=False)
    if report.precision == "int8" and report.calibration and report.calibration.get("images", calib_images) < SAFE_CALIB_IMAGES:
        console.print(
            f"  [yellow]warning:[/] calibrated on {report.calibration['images']} images, fewer than the "
            f"{SAFE_CALIB_IMAGES} the default INT8 recipe was measured with; AP may drop more (see docs/calibration-size.md)"
        )
    for note in report.notes:
        console.print(f"  [yellow]note:[/] {note}")


def _check_onnx(path: Path) -> None:
    """A missing, corrupt or non-ONNX input is one line with the fix, not a protobuf traceback."""
    from kapao_edge.errors import InputError

    if not path.is_file():
        raise InputError(f"{path} not found: give the .onnx written by `kapao-edge export`")
    try:
        import onnx

        onnx.load(str(path), load_external_data=False)
    except Exception:
        raise InputError(f"{path} is not a readable ONNX file: re-export it with `kapao-edge export`") from None
