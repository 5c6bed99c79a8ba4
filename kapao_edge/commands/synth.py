"""``kapao-edge synth``: write a synthetic multi-person pose set in COCO person-keypoints format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kapao_edge.commands._common import console, user_errors
from kapao_edge.errors import InputError


def parse_size(text: str) -> int | tuple[int, int]:
    """'320' -> 320; '256x320' or '256,320' -> (256, 320) as (height, width)."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise InputError(f"--imgsz must be N or HxW (e.g. 320 or 256x320), got {text!r}") from None
    if len(values) == 1:
        return values[0]
    if len(values) == 2:
        return values[0], values[1]
    raise InputError(f"--imgsz must be N or HxW (e.g. 320 or 256x320), got {text!r}")


@user_errors
def synth(
    out: Annotated[Path, typer.Option("--out", help="Output folder: images/ and person_keypoints.json.")],
    images: Annotated[int, typer.Option("--images", help="Number of images to generate.")] = 500,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same files.")] = 0,
    preset: Annotated[str, typer.Option("--preset", help="Keypoint set: coco (17) or crowdpose (14).")] = "coco",
    imgsz: Annotated[str, typer.Option("--imgsz", help="Image size: N or HxW.")] = "320",
    max_people: Annotated[int, typer.Option("--max-people", help="Most people in one image.")] = 15,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes to render with; 0 = one per CPU core.")
    ] = 0,
) -> None:
    """Generate procedural multi-person pose scenes with COCO keypoint annotations."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from kapao_edge.data.synth import SceneStyle, generate_dataset
    from kapao_edge.presets import get_preset

    if images < 1:
        raise InputError(f"--images must be at least 1, got {images}")
    if not 1 <= max_people <= 50:
        raise InputError(f"--max-people must be between 1 and 50, got {max_people}")
    chosen = get_preset(preset)
    size = parse_size(imgsz)
    style = SceneStyle(max_people=max_people)
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("synth", total=images)
        json_path = generate_dataset(
            out, images, seed, chosen, size, style=style, workers=workers or None,
            progress=lambda done: progress.update(task, completed=done),
        )
    console.print(f"wrote {images} images and {json_path}", highlight=False)
