"""A person in a scene: body, pose, clothes and placement, and how to sample a plausible one."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kapao_edge.data.synth.body import Build, LimbAngles, Pose

Colour = tuple[int, int, int]  # BGR

# Skin tones from very light to very dark (BGR).
SKIN_TONES: tuple[Colour, ...] = (
    (189, 211, 245), (160, 190, 234), (130, 170, 224), (110, 150, 200), (80, 120, 176),
    (60, 95, 141), (45, 70, 110), (35, 50, 80),
)
HAIR_COLOURS: tuple[Colour, ...] = (
    (20, 20, 25), (30, 40, 60), (40, 60, 100), (70, 110, 160), (120, 170, 210), (150, 150, 155),
    (40, 60, 150), (200, 200, 205),
)
TEXTURES: tuple[str, ...] = ("plain", "plain", "hstripes", "vstripes", "checks", "speckle")


@dataclass(frozen=True)
class Appearance:
    skin: Colour = SKIN_TONES[2]
    hair: Colour = HAIR_COLOURS[1]
    shirt: Colour = (60, 60, 180)
    shirt_accent: Colour = (230, 230, 230)  # second colour of stripes and checks
    trousers: Colour = (90, 60, 40)
    shoes: Colour = (30, 30, 30)
    texture: str = "plain"
    long_sleeves: bool = False
    shorts: bool = False
    long_hair: bool = False


@dataclass(frozen=True)
class Figure:
    """Everything needed to draw one person. ``depth``: larger is farther from the camera."""

    pelvis_xy: tuple[float, float]
    height_px: float
    yaw_deg: float = 0.0  # 0 faces the camera, 180 shows the back, +-90 profile
    roll_deg: float = 0.0  # in-plane tilt of the whole body
    depth: float = 0.0
    pose: Pose = field(default_factory=Pose)
    build: Build = field(default_factory=Build)
    appearance: Appearance = field(default_factory=Appearance)


@dataclass(frozen=True)
class FigureStyle:
    """Knobs of the figure sampler; the defaults aim at scenes a tiny network can learn."""

    p_back: float = 0.3  # facing away
    p_profile: float = 0.2  # side view
    max_roll_deg: float = 15.0
    p_active_pose: float = 0.55  # free arm/leg angles instead of standing or walking


def _colour(rng: np.random.Generator, low: int = 20, high: int = 235) -> Colour:
    return tuple(int(v) for v in rng.integers(low, high, size=3))  # type: ignore[return-value]


def sample_appearance(rng: np.random.Generator) -> Appearance:
    trousers = (
        _colour(rng, 20, 120) if rng.random() < 0.6 else _colour(rng)
    )  # dark trousers are common, bright ones exist
    return Appearance(
        skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
        hair=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
        shirt=_colour(rng),
        shirt_accent=_colour(rng),
        trousers=trousers,
        shoes=_colour(rng, 10, 90),
        texture=TEXTURES[int(rng.integers(len(TEXTURES)))],
        long_sleeves=bool(rng.random() < 0.5),
        shorts=bool(rng.random() < 0.25),
        long_hair=bool(rng.random() < 0.35),
    )


def sample_build(rng: np.random.Generator) -> Build:
    width = rng.uniform(0.85, 1.25)
    return Build(
        head_radius=0.062 * rng.uniform(0.9, 1.12),
        shoulder_half_width=0.12 * width,
        hip_half_width=0.085 * rng.uniform(0.9, 1.2),
        upper_arm=0.165 * rng.uniform(0.93, 1.07),
        forearm=0.145 * rng.uniform(0.93, 1.07),
        thigh=0.245 * rng.uniform(0.95, 1.05),
        shin=0.235 * rng.uniform(0.95, 1.05),
        limb_width=rng.uniform(0.8, 1.3),
    )


def _calm_pose(rng: np.random.Generator) -> Pose:
    """Standing or walking: arms swing against the legs."""
    swing = rng.uniform(0, 30)
    phase = rng.choice([-1.0, 1.0])
    arms = tuple(LimbAngles(rng.uniform(4, 22), -phase * s * swing * 0.8) for s in (1, -1))
    forearms = tuple(LimbAngles(a.abduct + rng.uniform(-5, 10), a.flex + rng.uniform(0, 45)) for a in arms)
    thighs = tuple(LimbAngles(rng.uniform(-2, 10), phase * s * swing) for s in (1, -1))
    shins = tuple(LimbAngles(t.abduct + rng.uniform(-4, 4), t.flex - rng.uniform(0, 35)) for t in thighs)
    return Pose(
        upper_arm=arms, forearm=forearms, thigh=thighs, shin=shins,  # type: ignore[arg-type]
        torso_lean=rng.uniform(-5, 10), head_yaw=rng.uniform(-25, 25), head_pitch=rng.uniform(-10, 15),
    )


def _active_pose(rng: np.random.Generator) -> Pose:
    """Free limbs: raised arms, reaching, kicking, crouching."""
    arms = []
    forearms = []
    for _ in range(2):
        abduct = rng.uniform(0, 170) if rng.random() < 0.4 else rng.uniform(0, 70)
        flex = rng.uniform(-40, 100)
        arms.append(LimbAngles(abduct, flex))
        forearms.append(LimbAngles(abduct + rng.uniform(-40, 40), min(flex + rng.uniform(0, 130), 160)))
    crouch = rng.random() < 0.2
    thighs = []
    shins = []
    for _ in range(2):
        flex = rng.uniform(40, 100) if crouch else rng.uniform(-25, 60)
        abduct = rng.uniform(-5, 35)
        thighs.append(LimbAngles(abduct, flex))
        bend = rng.uniform(60, 120) if crouch else rng.uniform(0, 90)
        shins.append(LimbAngles(abduct + rng.uniform(-10, 10), flex - bend))
    return Pose(
        upper_arm=tuple(arms), forearm=tuple(forearms), thigh=tuple(thighs), shin=tuple(shins),  # type: ignore[arg-type]
        torso_lean=rng.uniform(0, 35) if crouch else rng.uniform(-10, 20),
        head_yaw=rng.uniform(-35, 35),
        head_pitch=rng.uniform(-20, 25),
    )


def sample_pose(rng: np.random.Generator, style: FigureStyle = FigureStyle()) -> Pose:
    return _active_pose(rng) if rng.random() < style.p_active_pose else _calm_pose(rng)


def sample_yaw(rng: np.random.Generator, style: FigureStyle = FigureStyle()) -> float:
    u = rng.random()
    if u < style.p_back:
        return 180.0 + rng.uniform(-35, 35)
    if u < style.p_back + style.p_profile:
        return float(rng.choice([-90.0, 90.0])) + rng.uniform(-20, 20)
    return rng.uniform(-35, 35)


def sample_figure(
    rng: np.random.Generator,
    *,
    pelvis_xy: tuple[float, float],
    height_px: float,
    depth: float,
    style: FigureStyle = FigureStyle(),
) -> Figure:
    return Figure(
        pelvis_xy=pelvis_xy,
        height_px=height_px,
        yaw_deg=sample_yaw(rng, style),
        roll_deg=rng.uniform(-style.max_roll_deg, style.max_roll_deg),
        depth=depth,
        pose=sample_pose(rng, style),
        build=sample_build(rng),
        appearance=sample_appearance(rng),
    )
