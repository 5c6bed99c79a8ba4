"""Drawing poses on images, for `predict` and `demo` outputs."""

from __future__ import annotations

import numpy as np

from kapao_edge.presets import Preset

# BGR colours: the figure's left side, right side and centre line, so a mirrored skeleton shows.
_LEFT = (255, 128, 0)
_RIGHT = (0, 128, 255)
_CENTRE = (0, 220, 0)


def _side(name: str) -> tuple[int, int, int]:
    if name.startswith("left"):
        return _LEFT
    if name.startswith("right"):
        return _RIGHT
    return _CENTRE


def draw_poses(
    image_bgr: np.ndarray,
    keypoints: np.ndarray,  # (P, K, 3) [x, y, conf] in image pixels
    boxes: np.ndarray | None,  # (P, 4) xyxy or None
    scores: np.ndarray | None,  # (P,)
    preset: Preset,
    *,
    draw_boxes: bool = True,
    ids: np.ndarray | None = None,  # (P,) tracker ids, -1 = none shown
) -> np.ndarray:
    """Return a copy of ``image_bgr`` with skeletons (left orange, right blue) and person boxes.

    With ``ids`` (from a tracker), each person with an id gets it written above the box (or the top
    keypoint) and a box colour of its own, so one person keeps one colour through a video.
    """
    import cv2

    canvas = image_bgr.copy()
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(height, width) / 300))
    radius = thickness + 1
    for person, kps in enumerate(keypoints):
        points = [(int(round(x)), int(round(y))) for x, y in kps[:, :2]]
        for a, b in preset.skeleton:
            side_a, side_b = _side(preset.keypoint_names[a]), _side(preset.keypoint_names[b])
            colour = side_a if side_a == side_b else _CENTRE
            cv2.line(canvas, points[a], points[b], colour, thickness, cv2.LINE_AA)
        for k, point in enumerate(points):
            # Keypoints confirmed by a keypoint object (conf > 0) get a white rim.
            cv2.circle(canvas, point, radius, _side(preset.keypoint_names[k]), -1, cv2.LINE_AA)
            if kps[k, 2] > 0:
                cv2.circle(canvas, point, radius + 1, (255, 255, 255), 1, cv2.LINE_AA)
        if draw_boxes and boxes is not None:
            x1, y1, x2, y2 = (int(round(v)) for v in boxes[person])
            cv2.rectangle(canvas, (x1, y1), (x2, y2), (200, 200, 200), 1)
            if scores is not None:
                cv2.putText(
                    canvas, f"{scores[person]:.2f}", (x1, max(y1 - 3, 10)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA,
                )
        if ids is not None and ids[person] >= 0:
            _draw_id(canvas, int(ids[person]), kps, boxes[person] if draw_boxes and boxes is not None else None)
    return canvas


def id_colour(track_id: int) -> tuple[int, int, int]:
    """A bright BGR colour per id, the same in every frame (golden-angle hue steps keep neighbours apart)."""
    import cv2

    hue = int((track_id * 137.508) % 180)
    hsv = np.array([[[hue, 220, 255]]], np.uint8)
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])  # type: ignore[return-value]


def _draw_id(canvas: np.ndarray, track_id: int, kps: np.ndarray, box: np.ndarray | None) -> None:
    import cv2

    colour = id_colour(track_id)
    if box is not None:
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
        anchor = (x1, max(y1 - 14, 12))
    else:
        top = int(np.argmin(kps[:, 1]))
        anchor = (int(round(kps[top, 0])), max(int(round(kps[top, 1])) - 8, 12))
    cv2.putText(canvas, f"#{track_id}", anchor, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, f"#{track_id}", anchor, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
