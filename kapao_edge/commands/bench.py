"""``kapao-edge bench``: per-stage latency, throughput and memory of one or more engines, side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_HELP, IMGSZ_METAVAR, check_writable, console, model_imgsz, parse_imgsz, split_list, user_errors


@user_errors
def bench(
    engine: Annotated[Optional[list[str]], typer.Option("--engine", "-e", metavar="FILE[,FILE]", help="Deployed model (.onnx or a TensorRT .engine/.plan); repeat or comma-separate to compare several.")] = None,
    weights: Annotated[Optional[list[str]], typer.Option("--weights", "-w", metavar="FILE[,FILE]", help="Checkpoint run with the torch reference; repeat or comma-separate.")] = None,
    backend: Annotated[Optional[str], typer.Option(help="Backend for --engine files (default: by suffix).")] = None,
    device: Annotated[str, typer.Option(metavar="cpu|cuda", help="Torch device for --weights: cpu or cuda.")] = "cpu",
    precision: Annotated[str, typer.Option(metavar="fp32|fp16", help="Torch precision for --weights: fp32 or fp16.")] = "fp32",
    providers: Annotated[Optional[str], typer.Option(metavar="NAME[,NAME...]", help="ONNX Runtime providers, comma-separated: cpu, cuda, tensorrt.")] = None,
    threads: Annotated[Optional[int], typer.Option(help="CPU threads (torch and ONNX Runtime); default: theirs.")] = None,
    batch: Annotated[int, typer.Option(help="Images per inference call.")] = 1,
    imgsz: Annotated[Optional[str], typer.Option(metavar=IMGSZ_METAVAR, help=IMGSZ_HELP)] = None,
    iters: Annotated[int, typer.Option(help="Timed iterations per engine.")] = 50,
    warmup: Annotated[int, typer.Option(help="Untimed iterations first.")] = 5,
    postprocess_backend: Annotated[str, typer.Option(metavar="BACKEND", help="Post-processor: auto, cpp or numpy.")] = "auto",
    preset: Annotated[Optional[str], typer.Option(metavar="PRESET", help="Preset for files that do not say (foreign ONNX).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", metavar="FILE", help="Write the results as JSON here.")] = None,
    plot: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Write a PNG bar chart here (needs matplotlib).")] = None,
) -> None:
    """Benchmark engines: --weights entries first, then --engine entries; ratios are against the first."""
    from kapao_edge.bench import BenchSettings, benchmark_engine, render_table, to_json, write_plot
    from kapao_edge.bench.report import require_matplotlib
    from kapao_edge.data import check_input_size
    from kapao_edge.engines import load_engine
    from kapao_edge.errors import InputError
    from kapao_edge.utils.io import write_text_atomic

    entries = [(Path(p), "torch") for p in split_list(weights)] + [(Path(p), backend) for p in split_list(engine)]
    if not entries:
        raise InputError("give at least one --engine or --weights to benchmark")
    settings = BenchSettings(
        batch=batch, imgsz=check_input_size(parse_imgsz(imgsz) or model_imgsz(entries[0][0])), iters=iters, warmup=warmup, postprocess_backend=postprocess_backend
    )
    for target in (json_out, plot):
        if target is not None:
            check_writable(target)
    if plot is not None:
        require_matplotlib()
    if threads is not None:
        import torch

        torch.set_num_threads(threads)

    results = []
    for path, chosen in entries:
        options = {"device": device, "precision": precision} if chosen == "torch" else {"providers": providers, "threads": threads}
        if preset is not None:
            options["preset"] = preset
        with load_engine(path, backend=chosen, **options) as model:
            with console.status(f"benchmarking {path.name} ({model.backend})"):
                results.append(benchmark_engine(model, path.name, settings, device=_device_label(model, device)))
    console.print(render_table(results, console.width))
    for result in results:
        for note in result.notes:
            console.print(f"[yellow]{result.name}:[/] {note}")
    if json_out is not None:
        write_text_atomic(json_out, to_json(results, settings))
        console.print(f"JSON: {json_out}")
    if plot is not None:
        write_plot(results, plot)
        console.print(f"plot: {plot}")


def _device_label(model, torch_device: str) -> str:
    if model.backend == "torch":
        return torch_device
    providers = getattr(model, "providers", None)
    return providers[0].replace("ExecutionProvider", "").lower() if providers else "cpu"

