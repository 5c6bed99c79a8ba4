"""A 3-D stick body, posed by joint angles and seen by an orthographic camera.

Posing in 3-D and projecting (rather than drawing a 2-D skeleton directly) is what makes left and right
readable the way they are on real people: a figure facing the camera shows its face and has its left
side on the image's right; turned away it shows the back of the head; in profile the far limbs pass
behind the torso.

Body-local axes, in units of the figure's standing height: ``left`` (the person's left), ``down`` and
``forward`` (where the chest faces). Camera axes: x right, y down, z away from the camera.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

JOINTS: tuple[str, ...] = (
    "head_center", "head_top", "nose", "left_eye", "right_eye", "left_ear", "right_ear", "neck",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_toe", "right_toe", "pelvis",
)
JOINT_INDEX: dict[str, int] = {name: i for i, name in enumerate(JOINTS)}
FACE_JOINTS: tuple[str, ...] = ("nose", "left_eye", "right_eye", "left_ear", "right_ear")


@dataclass(frozen=True)
class Build:
    """Body proportions (fractions of standing height) and limb thickness."""

    head_radius: float = 0.062
    shoulder_half_width: float = 0.12
    hip_half_width: float = 0.085
    upper_arm: float = 0.165
    forearm: float = 0.145
    thigh: float = 0.245
    shin: float = 0.235
    limb_width: float = 1.0  # multiplies every limb's thickness


@dataclass(frozen=True)
class LimbAngles:
    """Direction of one limb segment: ``abduct`` swings it outwards, ``flex`` forwards (degrees)."""

    abduct: float = 0.0
    flex: float = 0.0


@dataclass(frozen=True)
class Pose:
    """Joint angles, per side (left, right). Defaults: standing straight, arms hanging."""

    upper_arm: tuple[LimbAngles, LimbAngles] = (LimbAngles(10, 0), LimbAngles(10, 0))
    forearm: tuple[LimbAngles, LimbAngles] = (LimbAngles(8, 5), LimbAngles(8, 5))
    thigh: tuple[LimbAngles, LimbAngles] = (LimbAngles(3, 0), LimbAngles(3, 0))
    shin: tuple[LimbAngles, LimbAngles] = (LimbAngles(2, 0), LimbAngles(2, 0))
    torso_lean: float = 0.0  # forward bend of the upper body at the pelvis, degrees
    head_yaw: float = 0.0  # head turned towards the person's left, degrees
    head_pitch: float = 0.0  # chin down, degrees


@dataclass
class Projected:
    """A figure's joints in image pixels and their depth (pixels, larger = farther)."""

    xy: np.ndarray  # (J, 2)
    depth: np.ndarray  # (J,)
    head_radius_px: float
    head_forward_xy: np.ndarray  # (2,) image-plane component of the head's facing direction
    head_facing: float  # 1 = looks at the camera, -1 = looks away
    body_forward_xy: np.ndarray  # (2,) image-plane component of the chest's facing direction
    face_behind: dict[str, bool] = field(default_factory=dict)  # face point hidden by the head itself


def _direction(angles: LimbAngles, side: float) -> np.ndarray:
    """Unit vector in body axes (left, down, forward); ``side`` +1 for the left limb, -1 for the right."""
    ab, fl = math.radians(angles.abduct), math.radians(angles.flex)
    return np.array([side * math.sin(ab) * math.cos(fl), math.cos(ab) * math.cos(fl), math.sin(fl)])


def _rotate_about_left(v: np.ndarray, degrees: float) -> np.ndarray:
    """Tilt a body vector forward (positive) about the left axis: down turns towards forward."""
    a = math.radians(degrees)
    left, down, fwd = v
    return np.array([left, down * math.cos(a) - fwd * math.sin(a), down * math.sin(a) + fwd * math.cos(a)])


def body_joints(pose: Pose, build: Build) -> np.ndarray:
    """3-D joints (J, 3) in body axes, origin at the pelvis."""
    b = build
    joints = np.zeros((len(JOINTS), 3))  # (J, 3)

    def put(name: str, v: np.ndarray) -> None:
        joints[JOINT_INDEX[name]] = v

    # Upper body points are placed upright, then leant forward about the pelvis.
    upper: dict[str, np.ndarray] = {}
    upper["neck"] = np.array([0.0, -0.36, 0.0])
    for side, name in ((1.0, "left"), (-1.0, "right")):
        i = 0 if name == "left" else 1
        shoulder = np.array([side * b.shoulder_half_width, -0.335, 0.0])
        elbow = shoulder + b.upper_arm * _direction(pose.upper_arm[i], side)
        wrist = elbow + b.forearm * _direction(pose.forearm[i], side)
        upper[f"{name}_shoulder"], upper[f"{name}_elbow"], upper[f"{name}_wrist"] = shoulder, elbow, wrist

    # Head frame: yaw about the vertical, then pitch; the face sits on the forward side of the sphere.
    yaw, pitch = math.radians(pose.head_yaw), math.radians(pose.head_pitch)
    h_fwd = np.array([math.sin(yaw), 0.0, math.cos(yaw)])
    h_left = np.array([math.cos(yaw), 0.0, -math.sin(yaw)])
    h_up = np.array([0.0, -1.0, 0.0])
    down = np.array([0.0, 1.0, 0.0])
    h_fwd, h_up = h_fwd * math.cos(pitch) + down * math.sin(pitch), h_up * math.cos(pitch) + h_fwd * math.sin(pitch)
    r = b.head_radius
    centre = np.array([0.0, -0.36 - 0.09, 0.0])
    upper["head_center"] = centre
    upper["head_top"] = centre + r * h_up
    upper["nose"] = centre + r * (0.98 * h_fwd - 0.2 * h_up)
    for side, name in ((1.0, "left"), (-1.0, "right")):
        upper[f"{name}_eye"] = centre + r * (0.8 * h_fwd + 0.38 * side * h_left + 0.12 * h_up)
        upper[f"{name}_ear"] = centre + r * (0.92 * side * h_left - 0.05 * h_fwd)
    for name, v in upper.items():
        put(name, _rotate_about_left(v, pose.torso_lean))

    for side, name in ((1.0, "left"), (-1.0, "right")):
        i = 0 if name == "left" else 1
        hip = np.array([side * b.hip_half_width, 0.0, 0.0])
        knee = hip + b.thigh * _direction(pose.thigh[i], side)
        ankle = knee + b.shin * _direction(pose.shin[i], side)
        # The foot points forward, at right angles to the shin.
        shin_dir = _direction(pose.shin[i], side)
        toe = ankle + 0.06 * _rotate_about_left(shin_dir, 90.0)
        put(f"{name}_hip", hip)
        put(f"{name}_knee", knee)
        put(f"{name}_ankle", ankle)
        put(f"{name}_toe", toe)
    put("pelvis", np.zeros(3))
    return joints


def head_axes(pose: Pose) -> np.ndarray:
    """The head's forward unit vector in body axes (after yaw, pitch and torso lean)."""
    yaw, pitch = math.radians(pose.head_yaw), math.radians(pose.head_pitch)
    fwd = np.array([math.sin(yaw), 0.0, math.cos(yaw)]) * math.cos(pitch) + np.array([0, 1.0, 0]) * math.sin(pitch)
    return _rotate_about_left(fwd, pose.torso_lean)


def camera_basis(yaw_deg: float) -> np.ndarray:
    """(3, 3) rows: the body's left, down and forward axes in camera coordinates.

    yaw 0 faces the camera (forward = -z, left = +x, so the person's left is on the image's right);
    yaw 180 shows the back; yaw +90 faces the image's right.
    """
    t = math.radians(yaw_deg)
    left = np.array([math.cos(t), 0.0, math.sin(t)])
    down = np.array([0.0, 1.0, 0.0])
    forward = np.array([math.sin(t), 0.0, -math.cos(t)])
    return np.stack([left, down, forward])


def project(
    pose: Pose, build: Build, *, yaw_deg: float, roll_deg: float, height_px: float, pelvis_xy: tuple[float, float]
) -> Projected:
    """Pose the body, turn it by ``yaw``, tilt it in the image plane by ``roll`` and place it."""
    basis = camera_basis(yaw_deg)  # (3, 3)
    cam = body_joints(pose, build) @ basis  # (J, 3) camera axes, height units
    c, s = math.cos(math.radians(roll_deg)), math.sin(math.radians(roll_deg))
    rot = np.array([[c, -s], [s, c]])
    xy = (cam[:, :2] @ rot.T) * height_px + np.asarray(pelvis_xy, dtype=float)  # (J, 2)
    depth = cam[:, 2] * height_px  # (J,)

    head_fwd = head_axes(pose) @ basis  # (3,)
    centre = cam[JOINT_INDEX["head_center"]]
    radius = build.head_radius
    face_behind = {
        # A face point on the far half of the head sphere cannot be seen or placed by an annotator.
        name: bool(cam[JOINT_INDEX[name], 2] - centre[2] > 0.25 * radius)
        for name in FACE_JOINTS
    }
    return Projected(
        xy=xy,
        depth=depth,
        head_radius_px=radius * height_px,
        head_forward_xy=rot @ head_fwd[:2],
        head_facing=float(-head_fwd[2]),
        body_forward_xy=rot @ basis[2, :2],
        face_behind=face_behind,
    )
