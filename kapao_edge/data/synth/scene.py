"""Random multi-person scenes: how many people, how big, where, and in what depth order."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kapao_edge.data.synth.background import BackgroundStyle, camera_effects, sample_background, sample_occluders
from kapao_edge.data.synth.figure import Figure, FigureStyle, sample_figure
from kapao_edge.data.synth.render import Scene, render_scene
from kapao_edge.errors import InputError
from kapao_edge.presets import Preset, get_preset


@dataclass(frozen=True)
class SceneStyle:
    """Difficulty knobs. Defaults: mostly 1-6 people, 30 px to most of the frame tall."""

    min_people: int = 1
    max_people: int = 15
    people_decay: float = 2.2  # P(n) ~ exp(-(n - 1) / people_decay): larger means more crowded
    min_height_px: float = 30.0
    max_height_frac: float = 0.95  # of the image height, for a lone person
    p_cut: float = 0.25  # a person may stand partly outside the frame
    p_group: float = 0.35  # a person stands next to (and overlaps) the previous one
    # People drawn shorter than this get a box but no keypoints (num_keypoints 0), as COCO leaves
    # tiny people unlabelled; COCOeval then ignores them instead of demanding their joints.
    min_labelled_height_px: float = 40.0
    figure: FigureStyle = field(default_factory=FigureStyle)
    background: BackgroundStyle = field(default_factory=BackgroundStyle)


def parse_imgsz(imgsz: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``320`` -> (320, 320); ``(h, w)`` stays. Sizes must be positive."""
    if isinstance(imgsz, (int, np.integer)):
        height = width = int(imgsz)
    else:
        if len(imgsz) != 2:
            raise InputError(f"image size must be one number or (height, width), got {imgsz!r}")
        height, width = (int(v) for v in imgsz)
    if height < 32 or width < 32:
        raise InputError(f"image size must be at least 32x32 pixels, got {height}x{width}")
    return height, width


def _num_people(rng: np.random.Generator, style: SceneStyle) -> int:
    counts = np.arange(style.min_people, style.max_people + 1)
    weights = np.exp(-(counts - style.min_people) / style.people_decay)
    return int(rng.choice(counts, p=weights / weights.sum()))


def sample_figures(rng: np.random.Generator, height: int, width: int, style: SceneStyle) -> list[Figure]:
    count = _num_people(rng, style)
    tallest = style.max_height_frac * height / count**0.3  # crowds are made of smaller people
    lowest = min(style.min_height_px, tallest)
    figures: list[Figure] = []
    for _ in range(count):
        u = rng.beta(2.0, 1.2)  # in log-size: a lean towards medium and large people
        h = math.exp(math.log(lowest) + (math.log(tallest) - math.log(lowest)) * u)
        if figures and rng.random() < style.p_group:
            anchor = figures[-1].pelvis_xy
            x = anchor[0] + rng.normal(0, 0.35) * h
            y = anchor[1] + rng.normal(0, 0.08) * h
        elif rng.random() < style.p_cut:
            x = rng.uniform(-0.1, 1.1) * width
            y = rng.uniform(0.2 * h, height + 0.2 * h)
        else:
            x = rng.uniform(0.08, 0.92) * width
            top, bottom = 0.53 * h, height - 0.52 * h
            y = rng.uniform(top, bottom) if bottom > top else height / 2
        depth = -math.log(h) + rng.normal(0, 0.15)  # bigger people tend to be nearer
        figures.append(sample_figure(rng, pelvis_xy=(float(x), float(y)), height_px=h, depth=depth, style=style.figure))
    return figures


def generate_scene(
    rng: np.random.Generator,
    preset: str | Preset = "coco",
    imgsz: int | tuple[int, int] = 320,
    style: SceneStyle | None = None,
) -> Scene:
    """One random scene: image (BGR uint8) and COCO-style annotations for ``preset``."""
    style = style or SceneStyle()
    preset = get_preset(preset)
    height, width = parse_imgsz(imgsz)
    background = sample_background(rng, height, width, style.background)
    figures = sample_figures(rng, height, width, style)
    occluders = sample_occluders(rng, height, width, style.background)
    scene = render_scene(figures, background, preset, occluders)
    for p, k in enumerate(scene.figure_index):
        if figures[k].height_px < style.min_labelled_height_px:
            scene.keypoints[p] = 0.0
    scene.image = camera_effects(rng, scene.image, style.background)
    return scene
