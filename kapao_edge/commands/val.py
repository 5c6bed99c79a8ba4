"""`kapao-edge val`: COCO keypoint AP of a checkpoint or a deployed engine on an annotated set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_HELP, IMGSZ_METAVAR, check_writable, console, folding_table, long_side, model_imgsz, parse_imgsz, user_errors
from kapao_edge.commands.predict import open_engine, postprocess_config


@user_errors
def val(
    data: Annotated[Path, typer.Option("--data", metavar="FILE|DIR", help="Person-keypoints annotations JSON (COCO format), or a dataset folder holding one and images/.")],
    images: Annotated[Optional[Path], typer.Option("--images", metavar="DIR", help="Image folder (default: found beside the JSON).")] = None,
    weights: Annotated[Optional[Path], typer.Option("--weights", "-w", metavar="FILE", help="Checkpoint (.pt) run with the PyTorch reference.")] = None,
    engine: Annotated[Optional[Path], typer.Option("--engine", "-e", metavar="FILE", help="Deployed model (.onnx or a TensorRT .engine/.plan).")] = None,
    imgsz: Annotated[Optional[str], typer.Option(metavar=IMGSZ_METAVAR, help=IMGSZ_HELP)] = None,
    thresholds: Annotated[str, typer.Option(metavar="val|demo", help="Post-processing preset: 'val' (official validation) or 'demo'.")] = "val",
    conf_thres: Annotated[Optional[float], typer.Option(help="Person confidence threshold (overrides the preset).")] = None,
    iou_thres: Annotated[Optional[float], typer.Option(help="Person NMS IoU threshold.")] = None,
    conf_thres_kp: Annotated[Optional[float], typer.Option(help="Keypoint-object confidence threshold.")] = None,
    iou_thres_kp: Annotated[Optional[float], typer.Option(help="Keypoint-object NMS IoU threshold.")] = None,
    overwrite_tol: Annotated[Optional[float], typer.Option(help="Fusion distance limit in original-image pixels (default: the model's recommendation, else the preset's).")] = None,
    save_json: Annotated[Optional[Path], typer.Option("--save-json", metavar="FILE", help="Write the COCO results here.")] = None,
    protocol: Annotated[str, typer.Option(metavar="auto|coco", help="'auto' (CrowdPose files need crowdposetools) or 'coco'.")] = "auto",
    preset: Annotated[Optional[str], typer.Option(metavar="PRESET", help="Preset when the model file does not say.")] = None,
    device: Annotated[str, typer.Option(metavar="cpu|cuda", help="Torch device for --weights.")] = "cpu",
    postprocess_backend: Annotated[str, typer.Option(metavar="BACKEND", help="Post-processor: auto, cpp or numpy.")] = "auto",
    tta: Annotated[bool, typer.Option(
        "--tta", help="Test-time augmentation as the official val.py --scales 0.8 1 1.2 --flips -1 3 -1 "
        "(three passes; needs an engine with dynamic height and width).",
    )] = False,
) -> None:
    """Evaluate keypoint AP/AR (pycocotools) and PCK@0.2."""
    from kapao_edge.eval.validate import validate
    from kapao_edge.utils.io import write_text_atomic

    size = long_side(parse_imgsz(imgsz) or model_imgsz(weights or engine), "val")
    check_writable(save_json)
    imgsz = size
    with open_engine(weights, engine, device=device, preset=preset, imgsz=imgsz) as model:
        config = postprocess_config(
            thresholds, model, conf_thres=conf_thres, iou_thres=iou_thres, conf_thres_kp=conf_thres_kp,
            iou_thres_kp=iou_thres_kp, overwrite_tol=overwrite_tol,
        )
        result = validate(
            model, data, images, imgsz=imgsz, config=config,
            postprocess_backend=postprocess_backend, protocol=protocol, tta=tta,
        )
    augmented = ", TTA" if tta else ""
    table = folding_table(
        f"{data.name}: {result.num_images} images, {len(result.results)} poses{augmented}", [*result.metrics, "PCK@0.2"]
    )
    table.add_row(*(f"{v:.1f}" for v in result.metrics.values()), f"{result.pck['PCK']:.1f}")
    console.print(table)
    console.print(
        f"{result.seconds / max(result.num_images, 1) * 1000:.1f} ms per image ({model.backend} engine); "
        f"post-processing: {thresholds} preset{_changes(config, thresholds)}",
        markup=False,
    )
    if save_json is not None:
        write_text_atomic(save_json, json.dumps(result.results))
        console.print(f"COCO results: {save_json}")


def _changes(config, thresholds: str) -> str:
    """What differs from the named preset (the model's recommendation or the user's options)."""
    from kapao_edge.postprocess import PostprocessConfig
    from kapao_edge.postprocess.config import format_values

    base = PostprocessConfig.named(thresholds).as_dict()
    changed = {key: value for key, value in config.as_dict().items() if base[key] != value}
    return ", " + format_values(changed) if changed else ""
