"""``kapao-edge parity``: AP of the PyTorch reference against FP32/FP16/INT8 deployed variants."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_HELP, IMGSZ_METAVAR, check_writable, console, folding_table, long_side, model_imgsz, parse_imgsz, split_list, user_errors

NARROW_PARITY_COLUMNS = 110  # below this, engine names in the table would fold mid-word


@user_errors
def parity(
    weights: Annotated[Path, typer.Option("--weights", "-w", metavar="FILE", help="Reference checkpoint (.pt).")],
    data: Annotated[Path, typer.Option("--data", metavar="FILE|DIR", help="Person-keypoints annotations JSON, or a dataset folder holding one and images/.")],
    images: Annotated[Optional[Path], typer.Option("--images", metavar="DIR", help="Image folder (default: found beside the JSON).")] = None,
    precisions: Annotated[Optional[list[str]], typer.Option(metavar="P[,P]", help="Variants to make from --weights: fp32, fp16, int8; repeat or comma-separate [default: fp32,fp16,int8].")] = None,
    engines: Annotated[Optional[list[str]], typer.Option("--engines", "--engine", "-e", metavar="FILE[,FILE]", help="Ready .onnx files to compare instead; repeat or comma-separate.")] = None,
    calib: Annotated[Optional[Path], typer.Option(help="INT8 calibration images (default: the --data set).")] = None,
    calib_images: Annotated[int, typer.Option(help="Images sampled for INT8 calibration.")] = 500,
    imgsz: Annotated[Optional[str], typer.Option(metavar=IMGSZ_METAVAR, help=IMGSZ_HELP)] = None,
    work_dir: Annotated[Optional[Path], typer.Option(metavar="DIR", help="Where variants are written (default: a temporary folder).")] = None,
    json_out: Annotated[Optional[Path], typer.Option("--json", metavar="FILE", help="Write the comparison as JSON.")] = None,
    plot: Annotated[Optional[Path], typer.Option(metavar="FILE", help="Write an AP bar chart (PNG; needs matplotlib).")] = None,
    tolerance_fp32: Annotated[float, typer.Option(help="Largest |ΔAP| allowed for FP32 variants.")] = 0.05,
    tolerance_fp16: Annotated[float, typer.Option(help="Largest |ΔAP| allowed for FP16 variants.")] = 0.2,
    tolerance_int8: Annotated[float, typer.Option(help="Largest |ΔAP| allowed for INT8 variants.")] = 1.0,
) -> None:
    """Evaluate reference and variants on the same images; exit non-zero if any |ΔAP| is out of tolerance."""
    from kapao_edge.bench.report import require_matplotlib
    from kapao_edge.errors import InputError
    from kapao_edge.eval.parity import build_variants, parse_precisions, run_parity, write_parity_plot
    from kapao_edge.utils.io import write_text_atomic

    imgsz = long_side(parse_imgsz(imgsz) or model_imgsz(weights), "parity")
    for target in (json_out, plot):
        check_writable(target)
    if plot is not None:
        require_matplotlib()
    engine_list = split_list(engines)
    chosen = ",".join(split_list(precisions)) or "fp32,fp16,int8"
    tolerances = {"fp32": tolerance_fp32, "fp16": tolerance_fp16, "int8": tolerance_int8}
    with tempfile.TemporaryDirectory(prefix="kapao-parity-") as scratch, console.status("parity") as status:
        def step(text: str) -> None:
            """A spinner on a terminal; in CI logs (no terminal) one line per step, so minutes are not silent."""
            if console.is_terminal:
                status.update(text)
            else:
                console.print(f"  {text}", style="dim", markup=False)
        if engine_list:
            paths = [Path(part) for part in engine_list]
            missing = [str(p) for p in paths if not p.is_file()]
            if missing:
                raise InputError(f"engine file(s) not found: {', '.join(missing)}")
        else:
            paths = build_variants(
                weights, parse_precisions(chosen), work_dir or Path(scratch), imgsz=imgsz,
                calib=calib if calib is not None else data, calib_images=calib_images, on_step=step,
            )
        report = run_parity(weights, data, images, paths, imgsz=imgsz, tolerances=tolerances, on_step=step)

    title = f"{data.name}: {report.num_images} images, imgsz {imgsz}"
    names = ["torch (reference)", *(v.name for v in report.variants)]
    narrow = console.width < NARROW_PARITY_COLUMNS
    if narrow:  # engine names would fold mid-word: number the rows and name them above the table
        console.print(title, markup=False)
        for index, name in enumerate(names):
            console.print(f"#{index} {name}", markup=False, overflow="fold")
        labels, title = [f"#{index}" for index in range(len(names))], ""
    else:
        labels = names
    table = folding_table(
        title,
        ["engine", "precision", "AP", "AP50", "AP75", "AR", "ΔAP", "kp err px", "score err", "ok"],
        left=("engine", "precision"),
    )
    ref = report.reference
    table.add_row(labels[0], "fp32", *(_num(ref[k]) for k in ("AP", "AP50", "AP75", "AR")), "", "", "", "")
    for label, v in zip(labels[1:], report.variants):
        d = v.detection_deltas
        table.add_row(
            label, v.precision, *(_num(v.metrics[k]) for k in ("AP", "AP50", "AP75", "AR")),
            "n/a" if v.delta_AP is None else f"{v.delta_AP:+.2f}",
            f"{d['matched_keypoint_error_px_mean']:.2f}", f"{d['matched_score_error_mean']:.4f}",
            "yes" if v.within_tolerance else "[bold red]NO[/]",
        )
    console.print(table)
    if json_out is not None:
        write_text_atomic(json_out, report.to_json())
        console.print(f"JSON: {json_out}", markup=False)
    if plot is not None:
        write_parity_plot(report, plot)
        console.print(f"plot: {plot}", markup=False)
    failed = [v.name for v in report.variants if not v.within_tolerance]
    if failed:
        console.print(f"[bold red]out of tolerance:[/] {', '.join(failed)}")
        raise typer.Exit(code=1)


def _num(value: float) -> str:
    return "n/a" if value != value else f"{value:.1f}"
