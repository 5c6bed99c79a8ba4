"""The wire format shared by ``kapao-edge serve`` and ``kapao_edge.serving.Client``.

One request carries original uint8 BGR frames ``frames`` (B, H, W, 3); the server letterboxes them
(so every client gets exactly what a local ``PosePipeline`` returns, and cameras of one resolution
batch together). Each frame's answer is a fixed-size block of pose rows plus a count, in
original-frame pixels, and a per-frame ``error`` (empty when the frame was served), so a bad frame
fails alone instead of failing the requests it was batched with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kapao_edge.data import LetterboxInfo
from kapao_edge.postprocess import Poses

INPUT = "frames"  # (B, H, W, 3) uint8 BGR
OUTPUTS = ("keypoints", "boxes", "scores", "count", "letterbox", "error")


@dataclass(frozen=True)
class Encoded:
    """One frame's answer as fixed-size rows (what travels)."""

    keypoints: np.ndarray  # (M, K, 3) float32
    boxes: np.ndarray  # (M, 4) float32
    scores: np.ndarray  # (M,) float32
    count: np.ndarray  # (1,) int32: rows in use, -1 on error
    letterbox: np.ndarray  # (6,) float64: input h, w, ratio w, h, pad left, top
    error: np.ndarray  # (1,) object: bytes, empty when served


def encode(poses: Poses, info: LetterboxInfo, max_poses: int, num_keypoints: int) -> Encoded:
    """Poses of one frame -> fixed rows; more than ``max_poses`` keeps the best (they come best first)."""
    count = min(len(poses), max_poses)
    keypoints = np.zeros((max_poses, num_keypoints, 3), np.float32)  # (M, K, 3)
    boxes = np.zeros((max_poses, 4), np.float32)  # (M, 4)
    scores = np.zeros((max_poses,), np.float32)  # (M,)
    keypoints[:count] = poses.keypoints[:count]
    boxes[:count] = poses.boxes[:count]
    scores[:count] = poses.scores[:count]
    geometry = np.array([*info.input_hw, *info.ratio, *info.pad], np.float64)  # (6,): float64 keeps the ratio exact
    return Encoded(keypoints, boxes, scores, np.array([count], np.int32), geometry, np.array([b""], object))


def encode_error(message: str, max_poses: int, num_keypoints: int) -> Encoded:
    empty = encode(Poses.empty(num_keypoints), LetterboxInfo((0, 0), (0, 0), (0.0, 0.0), (0.0, 0.0)), max_poses,
                   num_keypoints)
    return Encoded(empty.keypoints, empty.boxes, empty.scores, np.array([-1], np.int32), empty.letterbox,
                   np.array([message.encode()], object))


def stack(encoded: list[Encoded]) -> dict[str, np.ndarray]:
    """Answers of a request's frames -> its output tensors, each (B, ...)."""
    return {name: np.stack([getattr(item, name) for item in encoded]) for name in OUTPUTS}


def decode(outputs: dict[str, np.ndarray], index: int, original_hw: tuple[int, int]) -> tuple[Poses, LetterboxInfo, str]:
    """Frame ``index`` of a response -> (poses, letterbox, error message or '')."""
    error = outputs["error"][index].reshape(-1)[0]
    message = error.decode() if isinstance(error, bytes) else str(error)
    count = int(outputs["count"][index].reshape(-1)[0])
    if message or count < 0:
        return Poses.empty(int(outputs["keypoints"].shape[2])), LetterboxInfo(original_hw, (0, 0), (0.0, 0.0), (0.0, 0.0)), message or "server error"
    poses = Poses(
        keypoints=np.ascontiguousarray(outputs["keypoints"][index, :count], np.float32),  # (P, K, 3)
        boxes=np.ascontiguousarray(outputs["boxes"][index, :count], np.float32),  # (P, 4)
        scores=np.ascontiguousarray(outputs["scores"][index, :count], np.float32),  # (P,)
    )
    g = [float(v) for v in outputs["letterbox"][index]]
    info = LetterboxInfo(original_hw, (int(g[0]), int(g[1])), (g[2], g[3]), (g[4], g[5]))
    return poses, info, ""
