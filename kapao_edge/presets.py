"""Dataset presets: everything that depends on the keypoint set (names, flips, OKS sigmas, drawing).

A KAPAO head has ``nc = 1 + K`` classes (person, then one class per keypoint) and ``2K`` coordinate
channels, so ``K`` alone identifies the preset of a checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    name: str
    keypoint_names: tuple[str, ...]
    kp_flip: tuple[int, ...]  # index of the mirrored keypoint, for left-right flips
    oks_sigmas: tuple[float, ...]
    skeleton: tuple[tuple[int, int], ...]  # 0-based keypoint index pairs, for drawing

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoint_names)

    @property
    def num_classes(self) -> int:
        return 1 + self.num_keypoints

    @property
    def num_coords(self) -> int:
        return 2 * self.num_keypoints

    @property
    def num_outputs(self) -> int:
        """Columns per prediction row: box (4), objectness, classes, keypoint coordinates."""
        return 5 + self.num_classes + self.num_coords

    @property
    def class_names(self) -> tuple[str, ...]:
        return ("person", *self.keypoint_names)


COCO = Preset(
    name="coco",
    keypoint_names=(
        "nose", "left_eye", "right_eye", "left_ear", "right_ear",
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
        "left_wrist", "right_wrist", "left_hip", "right_hip",
        "left_knee", "right_knee", "left_ankle", "right_ankle",
    ),
    kp_flip=(0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15),
    oks_sigmas=(
        0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072,
        0.062, 0.062, 0.107, 0.107, 0.087, 0.087, 0.089, 0.089,
    ),
    skeleton=(
        (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
        (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
    ),
)

CROWDPOSE = Preset(
    name="crowdpose",
    keypoint_names=(
        "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
        "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
        "head", "neck",
    ),
    kp_flip=(1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 12, 13),
    # crowdposetools' sigmas (head and neck take the shoulder value).
    oks_sigmas=(
        0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107, 0.107,
        0.087, 0.087, 0.089, 0.089, 0.079, 0.079,
    ),
    skeleton=(
        (12, 13), (13, 0), (13, 1), (0, 2), (2, 4), (1, 3), (3, 5), (0, 6), (1, 7), (6, 7),
        (6, 8), (8, 10), (7, 9), (9, 11),
    ),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (COCO, CROWDPOSE)}


def get_preset(name_or_preset: str | Preset) -> Preset:
    if isinstance(name_or_preset, Preset):
        return name_or_preset
    try:
        return PRESETS[name_or_preset]
    except KeyError:
        from kapao_edge.errors import InputError

        raise InputError(
            f"unknown preset {name_or_preset!r}; choose one of {', '.join(sorted(PRESETS))}"
        ) from None


def preset_for_keypoints(num_keypoints: int) -> Preset:
    """The preset whose keypoint count is ``num_keypoints`` (17 -> coco, 14 -> crowdpose)."""
    for preset in PRESETS.values():
        if preset.num_keypoints == num_keypoints:
            return preset
    from kapao_edge.errors import InputError

    known = ", ".join(f"{p.name} (K={p.num_keypoints})" for p in PRESETS.values())
    raise InputError(f"no preset has {num_keypoints} keypoints; known: {known}")
