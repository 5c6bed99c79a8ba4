"""``kapao-edge export``: a checkpoint to a verified ONNX file with the decode inside the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_HELP, IMGSZ_METAVAR, check_writable, console, model_imgsz, parse_imgsz, user_errors


@user_errors
def export(
    weights: Annotated[str, typer.Option("--weights", "-w", metavar="FILE|NAME", help="Checkpoint (.pt: official KAPAO or kapao-edge) or a bundled model name.")],
    imgsz: Annotated[Optional[str], typer.Option(metavar=IMGSZ_METAVAR, help=IMGSZ_HELP)] = None,
    batch: Annotated[int, typer.Option(help="Batch size: fixed with --dynamic none, else the size verified.")] = 1,
    dynamic: Annotated[str, typer.Option(metavar="AXES", help="Dynamic axes: none, batch, or batch+hw (H and W in multiples of 64).")] = "batch+hw",
    opset: Annotated[int, typer.Option(help="ONNX opset (18 or newer).")] = 19,
    simplify: Annotated[bool, typer.Option("--simplify/--no-simplify", help="Slim the graph with onnxslim.")] = True,
    rewrite: Annotated[bool, typer.Option("--rewrite/--no-rewrite", help="Exact rewrites: BN fusion, Focus -> conv, SPP -> cascaded pools.")] = True,
    out: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Output .onnx file (default: the checkpoint name with .onnx).")] = None,
    preset: Annotated[Optional[str], typer.Option(metavar="PRESET", help="Dataset preset (coco, crowdpose) when the checkpoint does not say.")] = None,
    input_format: Annotated[str, typer.Option("--input", metavar="FORMAT", help="Graph input: 'float' (B,3,H,W) RGB in [0,1], or 'uint8' (B,H,W,3) letterboxed BGR frames scaled in the graph.")] = "float",
    max_candidates: Annotated[Optional[int], typer.Option(metavar="K", help="End the graph with the K rows of highest objectness above --candidate-floor, plus their count (GPU deployment; 1..3840; 1000 measured lossless at val thresholds).")] = None,
    candidate_floor: Annotated[float, typer.Option(metavar="OBJ", help="Objectness floor of --max-candidates (rows at or below it never leave the engine).")] = 0.001,
) -> None:
    """Export to ONNX, check the graph, and verify it against PyTorch with ONNX Runtime."""
    from kapao_edge.data import check_input_size
    from kapao_edge.errors import InputError
    from kapao_edge.export import export_onnx
    from kapao_edge.model import read_checkpoint

    from kapao_edge.io_options import IoOptions

    check_writable(out)
    imgsz = check_input_size(parse_imgsz(imgsz) or model_imgsz(weights))
    if max_candidates is not None and max_candidates <= 0:
        raise InputError(f"--max-candidates must be a positive number of rows, got {max_candidates}")
    io = IoOptions(input_format, max_candidates, candidate_floor)
    loaded = read_checkpoint(weights, preset=preset)
    target = out if out is not None else Path(loaded.path.stem + ".onnx")
    with console.status(f"exporting {loaded.path.name} -> {target}"):
        report = export_onnx(
            loaded.model, target, imgsz=tuple(imgsz), batch=batch, dynamic=dynamic, opset=opset,
            simplify=simplify, rewrite=rewrite, source_path=loaded.path, io=io,
        )
    shape_in = ", ".join(str(d) for d in report.input_shape)
    shape_out = ", ".join(str(d) for d in report.output_shape)
    console.print(f"wrote {report.path} ({report.file_size / 1024**2:.1f} MiB, opset {report.opset}, {report.seconds:.1f} s)", markup=False)
    counted = " + num_candidates (batch)" if io.compact else ""
    console.print(f"  images {io.input_format} ({shape_in}) -> predictions ({shape_out}){counted}", markup=False)
    console.print(f"  rewrites: {report.rewrites}", markup=False)
    slim = f"{report.nodes_exported} -> {report.nodes_final} nodes (onnxslim)" if report.simplified else f"{report.nodes_final} nodes"
    console.print(f"  graph: {slim}; ONNX checker passed", markup=False)
    shapes = "; ".join("x".join(str(d) for d in s) for s in report.verified_shapes)
    console.print(
        f"  ONNX Runtime vs torch on {shapes}: max abs {report.max_abs_diff:.3g}, max relative {report.max_rel_diff:.3g}",
        markup=False,
    )
    for note in report.notes:
        console.print(f"  [yellow]note:[/] {note}")
