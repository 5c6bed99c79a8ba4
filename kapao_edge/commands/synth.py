"""``kapao-edge synth``: write a synthetic multi-person pose set in COCO person-keypoints format, or
(``--video``) a synthetic video with per-frame keypoints and person ids for tracking."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from kapao_edge.commands._common import IMGSZ_METAVAR, console, parse_imgsz, user_errors
from kapao_edge.errors import InputError

IMAGES_DEFAULT = 500
FRAMES_DEFAULT = 150
IMGSZ_DEFAULT = "320"
VIDEO_IMGSZ_DEFAULT = "320x480"
MAX_PEOPLE_DEFAULT = 15
VIDEO_MAX_PEOPLE_DEFAULT = 6


@user_errors
def synth(
    out: Annotated[Path, typer.Option(
        "--out", metavar="DIR", help="Output folder: images/ and person_keypoints.json (with --video: video.mp4 and tracks.json).")],
    images: Annotated[Optional[int], typer.Option(
        "--images", help=f"Number of images to generate [default: {IMAGES_DEFAULT}].", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same files.")] = 0,
    preset: Annotated[str, typer.Option("--preset", metavar="PRESET", help="Keypoint set: coco (17) or crowdpose (14).")] = "coco",
    imgsz: Annotated[Optional[str], typer.Option(
        "--imgsz", metavar=IMGSZ_METAVAR, show_default=False,
        help=f"Image size: N (square) or HxW, not bound to multiples of 64 [default: {IMGSZ_DEFAULT}; with --video {VIDEO_IMGSZ_DEFAULT}].")] = None,
    max_people: Annotated[Optional[int], typer.Option(
        "--max-people", help=f"Most people in one image [default: {MAX_PEOPLE_DEFAULT}; "
                             f"with --video, in the sequence: {VIDEO_MAX_PEOPLE_DEFAULT}].", show_default=False)] = None,
    workers: Annotated[
        int, typer.Option("--workers", help="Processes to render with; 0 = one per CPU core.")
    ] = 0,
    video: Annotated[bool, typer.Option(
        "--video", help="Write one video of people walking, crossing and occluding each other, with per-frame "
                        "keypoints and ids (tracks.json), instead of still images.")] = False,
    frames: Annotated[Optional[int], typer.Option(
        "--frames", help=f"Frames of the video (--video only) [default: {FRAMES_DEFAULT}].", show_default=False)] = None,
) -> None:
    """Generate procedural multi-person pose scenes with COCO keypoint annotations."""
    from kapao_edge.presets import get_preset

    chosen = get_preset(preset)
    if video:
        if images is not None:
            raise InputError("--images does not apply to --video; use --frames")
        _video(out, seed, chosen, VIDEO_IMGSZ_DEFAULT if imgsz is None else imgsz,
               VIDEO_MAX_PEOPLE_DEFAULT if max_people is None else max_people,
               FRAMES_DEFAULT if frames is None else frames)
        return
    if frames is not None:
        raise InputError("--frames needs --video")
    images = IMAGES_DEFAULT if images is None else images
    max_people = MAX_PEOPLE_DEFAULT if max_people is None else max_people
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from kapao_edge.data.synth import SceneStyle, generate_dataset

    if images < 1:
        raise InputError(f"--images must be at least 1, got {images}")
    if not 1 <= max_people <= 50:
        raise InputError(f"--max-people must be between 1 and 50, got {max_people}")
    size = parse_imgsz(IMGSZ_DEFAULT if imgsz is None else imgsz, network=False)  # scenes, not a network input
    style = SceneStyle(max_people=max_people)
    columns = (TextColumn("synth"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("synth", total=images)
        json_path = generate_dataset(
            out, images, seed, chosen, size, style=style, workers=workers or None,
            progress=lambda done: progress.update(task, completed=done),
        )
    console.print(f"wrote {images} images and {json_path}", highlight=False)


def _video(out: Path, seed: int, preset, imgsz: str, max_people: int, frames: int) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from kapao_edge.data.synth.video import VideoStyle, write_video

    if frames < 1:
        raise InputError(f"--frames must be at least 1, got {frames}")
    if seed < 0:
        raise InputError(f"--seed must be a non-negative integer, got {seed}")
    if not 1 <= max_people <= 30:
        raise InputError(f"--max-people must be between 1 and 30 with --video, got {max_people}")
    style = VideoStyle(min_people=min(VideoStyle.min_people, max_people), max_people=max_people)
    size = parse_imgsz(imgsz, network=False)
    columns = (TextColumn("synth video"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("synth", total=frames)
        video_path, gt_path = write_video(
            out, seed, frames, size, preset, style=style,
            progress=lambda done: progress.update(task, completed=done),
        )
    console.print(f"wrote {frames} frames to {video_path} and ground truth to {gt_path}", highlight=False)
