"""``kapao-edge export``: a checkpoint to a verified ONNX file with the decode inside the graph."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_HELP, IMGSZ_METAVAR, check_writable, console, model_imgsz, parse_imgsz, user_errors
from kapao_edge.serving import DEFAULT_MAX_BATCH


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
    triton_repo: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Also write a Triton model repository (engine, Python-backend post-processing, ensemble) into this new folder, for a GPU Triton or DeepStream nvinferserver; needs --input uint8.")] = None,
    triton_backend: Annotated[str, typer.Option(help="Engine backend of --triton-repo: onnxruntime, or tensorrt (build model.plan on the GPU with `kapao-edge build`).")] = "onnxruntime",
    triton_max_batch: Annotated[int, typer.Option(help="max_batch_size of the --triton-repo models (dynamic batching).")] = DEFAULT_MAX_BATCH,
    triton_instances: Annotated[int, typer.Option(help="Instances per model in --triton-repo (instance_group count).")] = 1,
) -> None:
    """Export to ONNX, check the graph, and verify it against PyTorch with ONNX Runtime."""
    from kapao_edge.data import check_input_size
    from kapao_edge.errors import InputError
    from kapao_edge.export import export_onnx
    from kapao_edge.model import read_checkpoint

    from kapao_edge.io_options import IoOptions

    check_writable(out)
    if triton_repo is not None:
        from kapao_edge.serving.repository import RepositoryOptions, check_target

        repo_options = RepositoryOptions(backend=triton_backend, max_batch=triton_max_batch, instances=triton_instances)
        check_writable(triton_repo / "config.pbtxt")
        check_target(triton_repo)
        if input_format != "uint8":
            raise InputError("--triton-repo needs a uint8-input graph (clients send letterboxed uint8 frames): add --input uint8")
        if max_candidates is not None:
            raise InputError("--triton-repo needs the full-output graph: drop --max-candidates")
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
    if triton_repo is not None:
        _write_triton_repo(report.path, triton_repo, repo_options)


def _write_triton_repo(onnx_path: Path, target: Path, options) -> None:
    """The repository around the exported file, post-processing as the file recommends (demo preset)."""
    import onnx

    from kapao_edge.export.metadata import parse_metadata, read_onnx_metadata
    from kapao_edge.postprocess import PostprocessConfig
    from kapao_edge.serving.repository import write_repository

    metadata = parse_metadata(read_onnx_metadata(onnx.load(str(onnx_path), load_external_data=False)), source=str(onnx_path))
    config = PostprocessConfig.named("demo", metadata.postprocess)
    write_repository(onnx_path, target, preset_keypoints=metadata.preset_obj.num_keypoints,
                     postprocess=config.as_dict(), options=options)
    console.print(f"wrote Triton repository {target} (kapao_engine: {options.backend}, kapao_postprocess: python, "
                  "kapao: ensemble)", markup=False)
    if options.backend == "tensorrt":
        console.print(f"  on the GPU machine: kapao-edge build --onnx {target}/kapao_engine/1/model.onnx "
                      f"--out {target}/kapao_engine/1/model.plan", markup=False)
