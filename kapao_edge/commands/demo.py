"""`kapao-edge demo`: the whole product in one command, on nothing but the installed package.

It renders a few fresh synthetic scenes (a seed the bundled model never trained on), runs the bundled
model through the same pipeline users deploy, draws the poses, and scores them against the scenes'
ground truth — so a new user sees real poses and a real AP within seconds of installing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_HELP, IMGSZ_METAVAR, check_writable, console, folding_table, long_side, parse_imgsz, user_errors


@user_errors
def demo(
    weights: Annotated[str, typer.Option("--weights", "-w", metavar="FILE|NAME", help="Checkpoint path or bundled model name.")] = "bundled",
    out: Annotated[Path, typer.Option(metavar="DIR", help="Output folder for the scenes, drawn poses and results.")] = Path("runs/demo"),
    images: Annotated[int, typer.Option(help="How many scenes to render and evaluate.")] = 8,
    seed: Annotated[int, typer.Option(help="Scene seed (the bundled model was trained on other seeds).")] = 20261121,
    imgsz: Annotated[Optional[str], typer.Option(metavar=IMGSZ_METAVAR, help=IMGSZ_HELP)] = None,
) -> None:
    """Render synthetic scenes, detect poses with the bundled model, draw them and report AP."""
    import json

    import cv2

    from kapao_edge.data.synth import generate_dataset
    from kapao_edge.engines.torch_backend import TorchEngine
    from kapao_edge.errors import InputError
    from kapao_edge.eval.validate import validate
    from kapao_edge.model import read_checkpoint
    from kapao_edge.postprocess import PostprocessConfig
    from kapao_edge.viz import draw_poses

    if images < 1:
        raise InputError(f"--images must be at least 1, got {images}")
    requested = parse_imgsz(imgsz)
    check_writable(out / "poses")
    loaded = read_checkpoint(weights)
    model = loaded.model
    imgsz = long_side(requested, "demo") if requested is not None else loaded.imgsz
    scene_size = loaded.scene_size or imgsz  # the scenes it knows, even when its input is larger
    annotations = generate_dataset(out / "scenes", images, seed, preset=model.preset.name, imgsz=scene_size, workers=0)
    with TorchEngine(model.fuse().eval()) as engine:
        result = validate(engine, annotations, imgsz=imgsz, config=PostprocessConfig.named("val", model.postprocess), progress=False)

    drawn_dir = out / "poses"
    drawn_dir.mkdir(parents=True, exist_ok=True)
    demo_config = PostprocessConfig.named("demo", model.postprocess)
    data = json.loads(Path(annotations).read_text())
    for info in data["images"]:
        image = cv2.imread(str(Path(annotations).parent / "images" / info["file_name"]))
        poses = result.poses[info["id"]]
        keep = poses.scores > demo_config.conf_thres  # draw confident people only
        canvas = draw_poses(image, poses.keypoints[keep], poses.boxes[keep], poses.scores[keep], model.preset)
        cv2.imwrite(str(drawn_dir / info["file_name"]), canvas)

    sizes = f"{imgsz} px" if scene_size == imgsz else f"{scene_size} px scenes, {imgsz} px input"
    table = folding_table(f"{weights} on {images} new synthetic scenes ({sizes})", ["AP", "AP50", "AP75", "AR", "PCK@0.2"])
    table.add_row(*(f"{result.metrics[name]:.1f}" for name in ("AP", "AP50", "AP75", "AR")), f"{result.pck['PCK']:.1f}")
    console.print(table)
    console.print(f"drawn poses: {drawn_dir}", markup=False)
