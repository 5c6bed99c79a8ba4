"""Draw figures in depth order and read back COCO keypoints with honest visibility flags.

Every body part is drawn twice: in colour on the image and, with its draw index, on a label image.
A keypoint is covered (v=1) when the label at its pixel was drawn after all the parts it belongs to:
by a nearer figure, by a foreground object, or by the figure's own nearer limb. The same label image
gives each person's visible pixels, hence the tight box.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from kapao_edge.data.synth.body import JOINT_INDEX, Projected, project
from kapao_edge.data.synth.figure import Appearance, Colour, Figure
from kapao_edge.presets import Preset, get_preset

_SHIFT = 4  # sub-pixel drawing: coordinates are multiplied by 2**_SHIFT
_SCALE = 1 << _SHIFT
BACKGROUND_LABEL = -1

# Preset keypoint name -> body joint, where they differ.
_JOINT_OF_KEYPOINT = {"head": "head_top"}


@dataclass(frozen=True)
class Occluder:
    """A non-person object in front of everyone (a post, a table edge, a sign)."""

    polygon: np.ndarray  # (N, 2) pixels
    colour: Colour


@dataclass
class Scene:
    image: np.ndarray  # (H, W, 3) uint8 BGR
    keypoints: np.ndarray  # (P, K, 3) float32 [x, y, v], COCO flags; v=0 -> x = y = 0
    boxes_xywh: np.ndarray  # (P, 4) float32, tight box of the person's visible pixels
    # (P,) float32, box area. Not the mask area: stick limbs are thinner than clothed people, and the
    # mask area would make OKS stricter than on COCO for the same keypoint error.
    areas: np.ndarray
    mask_areas: np.ndarray  # (P,) float32, visible pixel count
    figure_index: np.ndarray  # (P,) int, which input figure each annotation is (unseen ones dropped)
    labels: np.ndarray  # (H, W) int32 draw index of the part on top, -1 = background

    @property
    def num_keypoints(self) -> np.ndarray:  # (P,)
        return (self.keypoints[:, :, 2] > 0).sum(axis=1).astype(np.int64)


def _pt(xy: np.ndarray) -> tuple[int, int]:
    return int(round(float(xy[0]) * _SCALE)), int(round(float(xy[1]) * _SCALE))


def _shade(colour: Colour, factor: float, offset: float = 0.0) -> Colour:
    return tuple(int(np.clip(c * factor + offset, 0, 255)) for c in colour)  # type: ignore[return-value]


class _Canvas:
    """Colour image + label image drawn in lockstep; hands out increasing draw indices."""

    def __init__(self, image: np.ndarray) -> None:
        self.image = image  # (H, W, 3) uint8
        self.labels = np.full(image.shape[:2], BACKGROUND_LABEL, np.int32)  # (H, W)
        self.next_index = 0

    def new_index(self) -> int:
        self.next_index += 1
        return self.next_index - 1

    def line(self, a: np.ndarray, b: np.ndarray, width: float, colour: Colour, index: int | None) -> None:
        w = max(1, int(round(width)))
        cv2.line(self.image, _pt(a), _pt(b), colour, w, cv2.LINE_AA, _SHIFT)
        if index is not None:
            cv2.line(self.labels, _pt(a), _pt(b), index, w, cv2.LINE_8, _SHIFT)

    def disc(self, centre: np.ndarray, radius: float, colour: Colour, index: int | None) -> None:
        r = max(1, int(round(radius * _SCALE)))
        cv2.circle(self.image, _pt(centre), r, colour, -1, cv2.LINE_AA, _SHIFT)
        if index is not None:
            cv2.circle(self.labels, _pt(centre), r, index, -1, cv2.LINE_8, _SHIFT)

    def ellipse(
        self, centre: np.ndarray, axes: tuple[float, float], angle: float, colour: Colour, index: int | None
    ) -> None:
        ax = (max(1, int(round(axes[0] * _SCALE))), max(1, int(round(axes[1] * _SCALE))))
        cv2.ellipse(self.image, _pt(centre), ax, angle, 0, 360, colour, -1, cv2.LINE_AA, _SHIFT)
        if index is not None:
            cv2.ellipse(self.labels, _pt(centre), ax, angle, 0, 360, index, -1, cv2.LINE_8, _SHIFT)

    def polygon(self, points: np.ndarray, colour: Colour, index: int | None) -> None:
        pts = np.round(points * _SCALE).astype(np.int32)[None]  # (1, N, 2)
        cv2.fillPoly(self.image, pts, colour, cv2.LINE_AA, _SHIFT)
        if index is not None:
            cv2.fillPoly(self.labels, pts, index, cv2.LINE_8, _SHIFT)


def _texture(canvas: _Canvas, index: int, appearance: Appearance, period: float) -> None:
    """Paint the pattern of the shirt over the pixels labelled ``index``."""
    if appearance.texture == "plain":
        return
    ys, xs = np.nonzero(canvas.labels == index)
    if len(ys) == 0:
        return
    p = max(2, int(round(period)))
    if appearance.texture == "hstripes":
        on = (ys // p) % 2 == 0
    elif appearance.texture == "vstripes":
        on = (xs // p) % 2 == 0
    elif appearance.texture == "checks":
        on = ((ys // p) + (xs // p)) % 2 == 0
    else:  # speckle: a fixed hash pattern, so rendering needs no random state
        on = (xs * 7 + ys * 13) % 11 < 2
    canvas.image[ys[on], xs[on]] = appearance.shirt_accent


def _limb(canvas: _Canvas, a: np.ndarray, b: np.ndarray, width: float, colour: Colour, index: int) -> None:
    canvas.line(a, b, width, colour, index)
    if width >= 4:  # a lighter stripe reads as a rounded limb
        canvas.line(a, b, width * 0.35, _shade(colour, 1.12, 18), None)


def _draw_head(canvas: _Canvas, proj: Projected, look: Appearance, index: int) -> None:
    j = lambda name: proj.xy[JOINT_INDEX[name]]  # noqa: E731
    centre, top = j("head_center"), j("head_top")
    r = proj.head_radius_px
    up = (top - centre) / max(r, 1e-6)  # (2,) unit-ish, tilts with the head
    if look.long_hair:
        canvas.ellipse(centre - up * r * 0.9, (r * 1.05, r * 1.35), float(np.degrees(np.arctan2(up[1], up[0]))) + 90,
                       look.hair, index)
    canvas.disc(centre, r, look.hair, index)
    for ear in ("left_ear", "right_ear"):
        if not proj.face_behind[ear]:
            canvas.disc(j(ear), r * 0.24, _shade(look.skin, 0.92), index)
    if proj.head_facing > -0.35:
        # The face covers the forward part of the head; hair stays on top and behind.
        face_centre = centre + proj.head_forward_xy * r * 0.42 - up * r * 0.2
        canvas.disc(face_centre, r * 0.8, look.skin, None)
    dark = (25, 25, 35)
    for eye in ("left_eye", "right_eye"):
        if not proj.face_behind[eye]:
            canvas.disc(j(eye), max(0.7, r * 0.14), dark, None)
    if not proj.face_behind["nose"]:
        sideways = float(np.linalg.norm(proj.head_forward_xy))
        canvas.disc(j("nose"), r * (0.14 + 0.12 * sideways), _shade(look.skin, 0.85), None)
        if proj.head_facing > 0.3 and r >= 5:
            mouth = j("nose") - up * r * 0.38
            side = np.array([up[1], -up[0]]) * r * 0.22
            canvas.line(mouth - side, mouth + side, max(1.0, r * 0.08), _shade(look.skin, 0.55), None)


def _draw_figure(canvas: _Canvas, fig: Figure, proj: Projected) -> dict[str, int]:
    """Draw one figure's parts far-to-near; return part name -> draw index."""
    j = lambda name: proj.xy[JOINT_INDEX[name]]  # noqa: E731
    d = lambda *names: float(np.mean([proj.depth[JOINT_INDEX[n]] for n in names])) / fig.height_px  # noqa: E731
    h, lw, look = fig.height_px, fig.build.limb_width, fig.appearance
    mid_shoulder = (j("left_shoulder") + j("right_shoulder")) / 2
    mid_hip = (j("left_hip") + j("right_hip")) / 2

    # (depth for ordering, part name, draw function(index))
    parts: list[tuple[float, str, object]] = []

    def add(depth: float, name: str, draw) -> None:
        parts.append((depth, name, draw))

    # The chest and hips have depth: in profile the torso is as wide as the body is thick.
    chest = proj.body_forward_xy * 0.07 * h  # (2,)
    belly = proj.body_forward_xy * 0.06 * h

    def torso(i: int) -> None:
        outline = np.stack([j("left_shoulder"), j("right_shoulder"), j("right_hip"), j("left_hip"),
                            mid_shoulder + chest, mid_shoulder - chest, mid_hip + belly, mid_hip - belly])
        canvas.polygon(cv2.convexHull(outline.astype(np.float32))[:, 0].astype(float), look.shirt, i)
        for s in ("left_shoulder", "right_shoulder"):
            canvas.disc(j(s), 0.03 * h * lw, look.shirt, i)
        _texture(canvas, i, look, 0.035 * h)

    add(d("left_shoulder", "right_shoulder", "left_hip", "right_hip"), "torso", torso)
    add(d("neck") + 0.004, "neck", lambda i: canvas.line(j("neck"), j("head_center"), 0.05 * h, look.skin, i))

    def pelvis(i: int) -> None:
        waist = [j(f"{s}_hip") + 0.18 * (j(f"{s}_shoulder") - j(f"{s}_hip")) for s in ("left", "right")]
        mid_waist = (waist[0] + waist[1]) / 2
        outline = np.stack([j("left_hip"), j("right_hip"), *waist,
                            mid_hip + belly, mid_hip - belly, mid_waist + belly, mid_waist - belly])
        canvas.polygon(cv2.convexHull(outline.astype(np.float32))[:, 0].astype(float), look.trousers, i)

    add(d("left_hip", "right_hip") - 0.004, "pelvis", pelvis)
    add(d("head_center") - 0.02, "head", lambda i: _draw_head(canvas, proj, look, i))

    for side in ("left", "right"):
        shoulder, elbow, wrist = j(f"{side}_shoulder"), j(f"{side}_elbow"), j(f"{side}_wrist")
        hip, knee, ankle, toe = j(f"{side}_hip"), j(f"{side}_knee"), j(f"{side}_ankle"), j(f"{side}_toe")
        forearm_colour = look.shirt if look.long_sleeves else look.skin
        shin_colour = look.skin if look.shorts else look.trousers
        hand = wrist + (wrist - elbow) / max(np.linalg.norm(wrist - elbow), 1e-6) * 0.02 * h
        add(d(f"{side}_shoulder", f"{side}_elbow") - 0.01, f"upper_arm_{side}",
            lambda i, a=shoulder, b=elbow: _limb(canvas, a, b, 0.055 * h * lw, look.shirt, i))
        add(d(f"{side}_elbow", f"{side}_wrist") - 0.011, f"forearm_{side}",
            lambda i, a=elbow, b=wrist, c=forearm_colour: _limb(canvas, a, b, 0.045 * h * lw, c, i))
        add(d(f"{side}_wrist") - 0.012, f"hand_{side}",
            lambda i, c=hand: canvas.disc(c, 0.028 * h * lw, _shade(look.skin, 0.95), i))
        add(d(f"{side}_hip", f"{side}_knee") - 0.006, f"thigh_{side}",
            lambda i, a=hip, b=knee: _limb(canvas, a, b, 0.085 * h * lw, look.trousers, i))
        add(d(f"{side}_knee", f"{side}_ankle") - 0.007, f"shin_{side}",
            lambda i, a=knee, b=ankle, c=shin_colour: _limb(canvas, a, b, 0.065 * h * lw, c, i))
        add(d(f"{side}_ankle", f"{side}_toe") - 0.008, f"shoe_{side}",
            lambda i, a=ankle, b=toe: canvas.line(a, b, 0.045 * h * lw, look.shoes, i))

    order = sorted(range(len(parts)), key=lambda k: (-parts[k][0], k))  # far first; stable on ties
    indices: dict[str, int] = {}
    for k in order:
        _, name, draw = parts[k]
        indices[name] = canvas.new_index()
        draw(indices[name])  # type: ignore[operator]
    return indices


def _owners(keypoint: str) -> tuple[str, ...]:
    """Parts a keypoint belongs to: it is visible when none of them is overdrawn at its pixel."""
    side = keypoint.split("_")[0]
    if keypoint in ("nose", "head") or keypoint.endswith(("_eye", "_ear")):
        return ("head",)
    if keypoint == "neck":
        return ("neck", "head", "torso")
    kind = keypoint.split("_", 1)[-1]
    return {
        "shoulder": ("torso", f"upper_arm_{side}"),
        "elbow": (f"upper_arm_{side}", f"forearm_{side}"),
        "wrist": (f"forearm_{side}", f"hand_{side}"),
        "hip": ("torso", "pelvis", f"thigh_{side}"),
        "knee": (f"thigh_{side}", f"shin_{side}"),
        "ankle": (f"shin_{side}", f"shoe_{side}"),
    }[kind]


def render_scene(
    figures: Sequence[Figure],
    background: np.ndarray | tuple[int, int],
    preset: str | Preset = "coco",
    occluders: Sequence[Occluder] = (),
) -> Scene:
    """Draw ``figures`` (any order; sorted by depth here) over ``background`` and annotate them.

    ``background`` is a BGR image (copied) or an (H, W) size for a plain grey one. Figures that end up
    with no visible pixel are left out of the annotations.
    """
    preset = get_preset(preset)
    if isinstance(background, tuple):
        image = np.full((*background, 3), 127, np.uint8)
    else:
        image = np.ascontiguousarray(background, dtype=np.uint8).copy()
    canvas = _Canvas(image)
    height, width = image.shape[:2]

    order = sorted(range(len(figures)), key=lambda k: (-figures[k].depth, k))
    drawn: list[tuple[int, Projected, dict[str, int]]] = []
    for k in order:
        fig = figures[k]
        proj = project(fig.pose, fig.build, yaw_deg=fig.yaw_deg, roll_deg=fig.roll_deg,
                       height_px=fig.height_px, pelvis_xy=fig.pelvis_xy)
        drawn.append((k, proj, _draw_figure(canvas, fig, proj)))
    for occ in occluders:
        canvas.polygon(np.asarray(occ.polygon, dtype=float), occ.colour, canvas.new_index())

    labels = canvas.labels
    records = []
    for k, proj, part_index in drawn:
        first, last = min(part_index.values()), max(part_index.values())
        ys, xs = np.nonzero((labels >= first) & (labels <= last))
        if len(ys) == 0:
            continue
        kps = np.zeros((preset.num_keypoints, 3), np.float32)  # (K, 3)
        for i, name in enumerate(preset.keypoint_names):
            joint = _JOINT_OF_KEYPOINT.get(name, name)
            x, y = proj.xy[JOINT_INDEX[joint]]
            if proj.face_behind.get(joint, False):
                continue  # the far side of the head: an annotator would leave it unlabelled
            if not (0 <= x <= width - 1 and 0 <= y <= height - 1):
                continue
            covering = labels[int(round(y)), int(round(x))]
            own = max(part_index[p] for p in _owners(name))
            kps[i] = (x, y, 1 if covering > own else 2)
        box = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
        records.append((k, kps, box, len(ys)))

    records.sort(key=lambda r: r[0])  # annotations in the caller's figure order
    num = len(records)
    return Scene(
        image=canvas.image,
        keypoints=np.stack([r[1] for r in records]) if num else np.zeros((0, preset.num_keypoints, 3), np.float32),
        boxes_xywh=np.array([r[2] for r in records], np.float32).reshape(num, 4),
        areas=np.array([r[2][2] * r[2][3] for r in records], np.float32),
        mask_areas=np.array([r[3] for r in records], np.float32),
        figure_index=np.array([r[0] for r in records], np.int64),
        labels=labels,
    )
