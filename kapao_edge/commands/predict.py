"""`kapao-edge predict`: poses for an image, a folder or a video; drawn outputs and COCO results JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import console, user_errors


def open_engine(weights: Optional[Path], engine: Optional[Path], *, device: str = "cpu",
                preset: Optional[str] = None, imgsz: Optional[int] = None):
    """The engine named by exactly one of ``--weights`` (torch reference) or ``--engine`` (a deployed file)."""
    from kapao_edge.engines import load_engine
    from kapao_edge.errors import InputError

    if (weights is None) == (engine is None):
        raise InputError("give exactly one of --weights (a checkpoint) or --engine (an ONNX or TensorRT file)")
    if weights is not None:
        return load_engine(weights, backend="torch", device=device, preset=preset)
    options = {"preset": preset, "imgsz": imgsz} if (preset or imgsz) else {}
    return load_engine(engine, **options)


def postprocess_config(thresholds: str, engine, **overrides):
    """The named preset, then what the model file recommends, then the user's explicit options."""
    from kapao_edge.errors import InputError
    from kapao_edge.postprocess import PostprocessConfig
    from kapao_edge.postprocess.config import PRESET_NAMES

    if thresholds not in PRESET_NAMES:  # named() would refuse it too, but without the option's name
        raise InputError(f"--thresholds must be one of {', '.join(PRESET_NAMES)}, got {thresholds!r}")
    return PostprocessConfig.named(thresholds, engine.metadata.postprocess, **overrides)


@user_errors
def predict(
    source: Annotated[Path, typer.Argument(help="An image, a folder of images, or a video file.")],
    weights: Annotated[Optional[Path], typer.Option("--weights", "-w", help="Checkpoint (.pt) run with the PyTorch reference.")] = None,
    engine: Annotated[Optional[Path], typer.Option("--engine", "-e", help="Deployed model: .onnx (ONNX Runtime) or .engine/.plan (TensorRT, built by `kapao-edge build`).")] = None,
    imgsz: Annotated[int, typer.Option(help="Input size (long side, multiple of 64) for engines with dynamic shapes.")] = 640,
    thresholds: Annotated[str, typer.Option(help="Post-processing preset: 'demo' (official image demo) or 'val'.")] = "demo",
    conf_thres: Annotated[Optional[float], typer.Option(help="Person confidence threshold (overrides the preset).")] = None,
    iou_thres: Annotated[Optional[float], typer.Option(help="Person NMS IoU threshold.")] = None,
    conf_thres_kp: Annotated[Optional[float], typer.Option(help="Keypoint-object confidence threshold.")] = None,
    iou_thres_kp: Annotated[Optional[float], typer.Option(help="Keypoint-object NMS IoU threshold.")] = None,
    overwrite_tol: Annotated[Optional[float], typer.Option(help="Fusion distance limit in original-image pixels (default: the model's recommendation, else the preset's).")] = None,
    out: Annotated[Path, typer.Option(help="Output folder for drawn images/video and results JSON.")] = Path("runs/predict"),
    save_images: Annotated[bool, typer.Option("--save-images/--no-save-images", help="Write drawn images or video.")] = True,
    save_json: Annotated[bool, typer.Option("--save-json/--no-save-json", help="Write COCO keypoint results JSON.")] = True,
    preset: Annotated[Optional[str], typer.Option(help="Dataset preset (coco, crowdpose) when the file does not say.")] = None,
    device: Annotated[str, typer.Option(help="Torch device for --weights: cpu or cuda.")] = "cpu",
    postprocess_backend: Annotated[str, typer.Option(help="Post-processor: auto, cpp or numpy.")] = "auto",
) -> None:
    """Detect poses, draw them, and write COCO-format results."""
    from kapao_edge.pipeline import predict_source

    with open_engine(weights, engine, device=device, preset=preset, imgsz=imgsz) as model:
        config = postprocess_config(
            thresholds, model, conf_thres=conf_thres, iou_thres=iou_thres, conf_thres_kp=conf_thres_kp,
            iou_thres_kp=iou_thres_kp, overwrite_tol=overwrite_tol,
        )
        summary = predict_source(
            model, source, out=out, imgsz=imgsz, config=config, save_images=save_images,
            save_json=save_json, postprocess_backend=postprocess_backend,
        )
    console.print(
        f"{summary['frames']} frame(s), {summary['poses']} pose(s) "
        f"({model.backend} engine, {summary['postprocess_backend']} post-processing) -> {out}",
        markup=False,
    )
    if summary.get("results_json"):
        console.print(f"COCO results: {summary['results_json']}")
    if summary.get("skipped"):
        console.print(f"[yellow]skipped {len(summary['skipped'])} unreadable file(s)[/]: " + json.dumps(summary["skipped"][:5]))
