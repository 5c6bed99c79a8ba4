"""Synthetic video with per-frame keypoints and identities, so that tracking can be measured.

People walk through one fixed scene: legs and arms swing with the gait, walkers going opposite ways
cross and hide each other (nearer, bigger people are drawn on top), posts stand in front of them,
and people enter and leave the frame. Every frame is drawn by the same renderer as the still scenes
(``render_scene``), so a model trained on those sees the people it knows; the renderer's honest
visibility flags and tight visible boxes become the ground truth, and the identity of a person is
their index in the sequence.

Everything derives from ``numpy.random.default_rng([seed, ...])``: the same seed gives the same
frames and the same ground truth.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from kapao_edge.data.synth.background import BackgroundStyle, camera_effects, sample_background
from kapao_edge.data.synth.body import LimbAngles, Pose
from kapao_edge.data.synth.figure import Figure, sample_appearance, sample_build
from kapao_edge.data.synth.render import Occluder, render_scene
from kapao_edge.data.synth.scene import parse_imgsz
from kapao_edge.errors import InputError
from kapao_edge.presets import Preset, get_preset
from kapao_edge.utils.io import atomic_path, write_text_atomic

VIDEO_NAME = "video.mp4"
GROUND_TRUTH_NAME = "tracks.json"
DEFAULT_VIDEO_SIZE = (320, 480)  # (height, width): room to walk across


@dataclass(frozen=True)
class VideoStyle:
    """Knobs of a sequence. Heights are fractions of the frame height; speeds are body heights per
    frame (a brisk walk at 30 frames/s is about 0.025)."""

    min_people: int = 2
    max_people: int = 6
    min_height: float = 0.3
    max_height: float = 0.75
    min_speed: float = 0.008
    max_speed: float = 0.03
    p_profile: float = 0.65  # walking across the frame, seen from the side; else towards or away
    p_standing: float = 0.1  # a person who stays in place, moving only their arms
    p_post: float = 0.5  # a vertical post in front of everyone: short occlusions
    background: BackgroundStyle = field(default_factory=lambda: BackgroundStyle(p_occluder=0.0, p_blur=0.0))


@dataclass(frozen=True)
class _Walker:
    start_xy: tuple[float, float]  # pelvis at frame 0
    velocity: tuple[float, float]  # pixels per frame
    height_px: float
    yaw_deg: float
    depth: float
    phase: float  # gait phase at frame 0
    cadence: float  # gait phase per frame (radians)
    swing_deg: float  # thigh swing amplitude
    figure: Figure  # build and appearance (the pose and placement are set per frame)


@dataclass
class VideoFrame:
    """One frame and its ground truth: people visible in it, in increasing id order."""

    image: np.ndarray  # (H, W, 3) uint8 BGR
    ids: np.ndarray  # (P,) int64 person identity, constant over the sequence
    keypoints: np.ndarray  # (P, K, 3) float32 x, y, COCO visibility flag (0, 1 covered, 2 visible)
    boxes: np.ndarray  # (P, 4) float32 tight box of the visible pixels, x1, y1, x2, y2


def _sample_walkers(rng: np.random.Generator, height: int, width: int, num_frames: int,
                    style: VideoStyle) -> list[_Walker]:
    count = int(rng.integers(style.min_people, style.max_people + 1))
    walkers = []
    for _ in range(count):
        h = float(rng.uniform(style.min_height, style.max_height) * height)
        feet = 0.3 * height + 0.9 * h + rng.normal(0, 0.03 * height)  # bigger people stand lower
        y = float(min(feet, height + 0.15 * h) - 0.5 * h)
        speed = float(rng.uniform(style.min_speed, style.max_speed) * h)
        direction = float(rng.choice([-1.0, 1.0]))
        if rng.random() < style.p_standing:
            velocity, yaw = (0.0, 0.0), float(rng.uniform(-40, 40))
            speed = 0.0
        elif rng.random() < style.p_profile:
            velocity = (direction * speed, float(rng.normal(0, 0.03 * speed)))
            yaw = 90.0 * direction + float(rng.uniform(-15, 15))  # yaw +90 faces the image's right
        else:  # towards the camera (yaw ~0) or away (~180), drifting sideways
            velocity = (direction * speed * 0.35, 0.0)
            yaw = float(rng.choice([0.0, 180.0])) + 25.0 * direction * (1 if rng.random() < 0.5 else -1)
        # In view at a random moment, anywhere across the frame: people who start outside walk in,
        # people near an edge walk out.
        seen_at = float(rng.uniform(0, num_frames))
        x0 = float(rng.uniform(0.05, 0.95) * width) - velocity[0] * seen_at
        walkers.append(_Walker(
            start_xy=(x0, y), velocity=velocity, height_px=h, yaw_deg=yaw,
            depth=-math.log(h) + float(rng.normal(0, 0.02)),
            phase=float(rng.uniform(0, 2 * math.pi)),
            cadence=2 * math.pi * max(speed, 0.004 * h) / (1.1 * h),  # one gait cycle per ~1.1 heights
            swing_deg=float(rng.uniform(18, 32)),
            figure=Figure(pelvis_xy=(0.0, 0.0), height_px=h, build=sample_build(rng),
                          appearance=sample_appearance(rng)),
        ))
    return walkers


def _gait(walker: _Walker, t: int) -> tuple[Pose, float]:
    """Walking pose at frame ``t``: legs swing in anti-phase, arms against the legs; and the pelvis bob."""
    phase = walker.phase + walker.cadence * t
    a = walker.swing_deg
    thighs, shins, arms, forearms = [], [], [], []
    for side in (0, 1):
        s = math.sin(phase + math.pi * side)  # left and right legs in anti-phase
        swing = a * s
        thighs.append(LimbAngles(3.0, swing))
        knee = 8.0 + 30.0 * max(0.0, math.cos(phase + math.pi * side))  # the leg swinging forward bends
        shins.append(LimbAngles(2.0, swing - knee))
        arms.append(LimbAngles(8.0, -0.7 * swing))
        forearms.append(LimbAngles(8.0, -0.7 * swing + 15.0 + 10.0 * max(0.0, -s)))
    pose = Pose(upper_arm=tuple(arms), forearm=tuple(forearms), thigh=tuple(thighs),  # type: ignore[arg-type]
                shin=tuple(shins), torso_lean=4.0, head_yaw=8.0 * math.sin(0.3 * phase))  # type: ignore[arg-type]
    bob = -0.012 * walker.height_px * abs(math.cos(phase))
    return pose, bob


def _posts(rng: np.random.Generator, height: int, width: int, style: VideoStyle) -> list[Occluder]:
    if rng.random() >= style.p_post:
        return []
    x = float(rng.uniform(0.2, 0.8) * width)
    half = float(rng.uniform(0.015, 0.04) * width)
    colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
    polygon = np.array([[x - half, -1], [x + half, -1], [x + half, height], [x - half, height]])
    return [Occluder(polygon=polygon, colour=colour)]  # type: ignore[arg-type]


def generate_video(
    seed: int,
    num_frames: int = 150,
    imgsz: int | tuple[int, int] = DEFAULT_VIDEO_SIZE,
    preset: str | Preset = "coco",
    style: VideoStyle | None = None,
) -> Iterator[VideoFrame]:
    """Yield the frames of sequence ``seed`` with their ground truth, one at a time."""
    if num_frames < 1:
        raise InputError(f"number of frames must be at least 1, got {num_frames}")
    if seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}")
    preset = get_preset(preset)
    height, width = parse_imgsz(imgsz)
    style = style or VideoStyle()
    if not 1 <= style.min_people <= style.max_people:
        raise InputError(f"need 1 <= min_people <= max_people, got {style.min_people} and {style.max_people}")
    rng = np.random.default_rng([seed, 0])
    background = sample_background(rng, height, width, style.background)
    walkers = _sample_walkers(rng, height, width, num_frames, style)
    posts = _posts(rng, height, width, style)
    for t in range(num_frames):
        figures = []
        for w in walkers:
            pose, bob = _gait(w, t)
            x = w.start_xy[0] + w.velocity[0] * t
            y = w.start_xy[1] + w.velocity[1] * t + bob
            figures.append(replace(w.figure, pelvis_xy=(x, y), yaw_deg=w.yaw_deg, depth=w.depth, pose=pose))
        scene = render_scene(figures, background, preset, posts)
        # The same camera in every frame: light, contrast and grain drawn from one fixed generator.
        image = camera_effects(np.random.default_rng([seed, 1]), scene.image, style.background)
        xywh = scene.boxes_xywh  # (P, 4)
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1).astype(np.float32)  # (P, 4)
        yield VideoFrame(image=image, ids=scene.figure_index.astype(np.int64), keypoints=scene.keypoints,
                         boxes=boxes)


def frame_record(frame: VideoFrame) -> list[dict]:
    """The JSON ground truth of one frame: ``[{id, keypoints (K x [x, y, v]), box [x1, y1, x2, y2]}]``."""
    return [
        {
            "id": int(i),
            "keypoints": [[round(float(x), 2), round(float(y), 2), int(v)] for x, y, v in kps],
            "box": [float(b) for b in box],
        }
        for i, kps, box in zip(frame.ids, frame.keypoints, frame.boxes)
    ]


def write_video(
    out_dir: str | os.PathLike,
    seed: int,
    num_frames: int = 150,
    imgsz: int | tuple[int, int] = DEFAULT_VIDEO_SIZE,
    preset: str | Preset = "coco",
    *,
    style: VideoStyle | None = None,
    fps: float = 30.0,
    progress: Callable[[int], None] | None = None,
) -> tuple[Path, Path]:
    """Write ``video.mp4`` and ``tracks.json`` under ``out_dir``; return their paths.

    Both files are written to temporary names and renamed when complete.
    """
    preset = get_preset(preset)
    height, width = parse_imgsz(imgsz)
    frames = generate_video(seed, num_frames, (height, width), preset, style)  # checks the options
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create {out}: {exc.strerror or exc}") from None
    video_path, gt_path = out / VIDEO_NAME, out / GROUND_TRUTH_NAME
    records = []
    with atomic_path(video_path) as tmp:
        writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
        if not writer.isOpened():
            raise InputError(f"cannot open an mp4 writer for {video_path}")
        try:
            for done, frame in enumerate(frames, 1):
                writer.write(frame.image)
                records.append(frame_record(frame))
                if progress:
                    progress(done)
        finally:
            writer.release()
    info = {
        "description": "kapao-edge synthetic video: per-frame keypoints and person ids",
        "seed": seed, "frames": num_frames, "fps": fps, "image_size": [height, width], "preset": preset.name,
        "keypoints": list(preset.keypoint_names), "box_format": "x1y1x2y2",
    }
    write_text_atomic(gt_path, json.dumps({"info": info, "frames": records}, separators=(",", ":")))
    return video_path, gt_path


def load_tracks(path: str | os.PathLike) -> tuple[dict, list[list[dict]]]:
    """Read a ground-truth file written by ``write_video``: (info, frames)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return data["info"], data["frames"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read video ground truth {path}: {exc}") from None
