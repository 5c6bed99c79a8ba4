"""Output files of a prediction run: annotated video, JSON lines per frame, COCO results, run folders.

Writers sit here, not in the runtime: the runtime returns poses; what becomes a file is the
caller's choice. Every writer leaves a usable file when a run stops early (Ctrl-C, SIGTERM, a source
that fails): the video is finalized and renamed from its temporary name, and every JSON line that
exists is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from kapao_edge.errors import InputError
from kapao_edge.utils.io import can_create_in, write_text_atomic

DEFAULT_FPS = 30.0  # for sources that do not say (image iterators, some cameras)


def check_output_dir(out: str | os.PathLike) -> Path:
    """Refuse an output folder that cannot be created or written, before any work and without creating it."""
    out = Path(out)
    probe = out
    while not probe.exists():  # the nearest existing ancestor decides
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        where = "is a file" if probe == out else f"is under {probe}, which is a file"
        raise InputError(f"cannot use {out} as the output folder: it {where}")
    if probe.exists() and not can_create_in(probe):
        raise InputError(f"cannot write to {out}: {probe} is not writable")
    return out


def choose_run_dir(out: str | os.PathLike, *, exist_ok: bool = False) -> Path:
    """``out`` itself when new or empty (or ``exist_ok``), else the first free ``out2``, ``out3``, ...

    So ``runs/predict`` then ``runs/predict2``: a second run never mixes its files into the first's.
    """
    out = Path(out)
    if exist_ok or not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return out
    number = 2
    while True:
        candidate = out.with_name(f"{out.name}{number}")
        if not candidate.exists() or (candidate.is_dir() and not any(candidate.iterdir())):
            return candidate
        number += 1


def image_id_for(name: str, fallback: int) -> int:
    """COCO image id from a file name such as ``000000000785.jpg`` (785), else ``fallback``."""
    stem = name.rsplit(".", 1)[0]
    return int(stem) if stem.isdigit() else fallback


class VideoWriter:
    """mp4 (mp4v) at the source's fps, written under a temporary name and renamed on ``close``.

    ``close`` runs on every exit path (``with``), interrupted ones included: OpenCV then writes the
    index that makes the file playable, so the video holds exactly the ``frames`` written. A video with
    no frame is removed instead. Frames of another size than the first are resized to it.

    ``pace_frames=N`` (live sources, where dropped frames make the source's fps wrong for what is
    kept): the first N frames wait in memory and the fps is the rate their timestamps show, so the
    recording plays at the speed it happened.
    """

    def __init__(self, target: str | os.PathLike, fps: float | None = None, *, pace_frames: int = 0) -> None:
        self.target = Path(target)
        self.fps = float(fps) if fps and fps > 0 else DEFAULT_FPS
        self.frames = 0
        self.pace_frames = pace_frames
        self._pending: list[tuple[np.ndarray, float | None]] = []  # (frame, timestamp) until the pace is known
        self._writer = None
        self._size: tuple[int, int] | None = None
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".{self.target.stem}.", suffix=".tmp.mp4", dir=self.target.parent)
        except OSError as exc:
            raise InputError(f"cannot write to {self.target}: {exc.strerror or exc}") from None
        os.close(fd)
        self.tmp = Path(name)

    def write(self, image_bgr: np.ndarray, timestamp: float | None = None) -> None:
        """Append one (H, W, 3) uint8 BGR frame (``timestamp`` in seconds, used by ``pace_frames``)."""
        self.frames += 1
        if self._writer is None and self.pace_frames > 0:
            self._pending.append((image_bgr, timestamp))
            if len(self._pending) >= self.pace_frames:
                self._flush_pending()
            return
        self._encode(image_bgr)

    def _flush_pending(self) -> None:
        """Set the fps from the held frames' timestamps, then encode them."""
        pending, self._pending = self._pending, []
        times = [t for _, t in pending if t is not None]
        if len(times) == len(pending) >= 2 and times[-1] > times[0]:
            self.fps = (len(times) - 1) / (times[-1] - times[0])
        self.pace_frames = 0
        for image, _ in pending:
            self._encode(image)

    def _encode(self, image_bgr: np.ndarray) -> None:
        import cv2

        if self._writer is None:
            height, width = image_bgr.shape[:2]
            self._size = (width, height)
            self._writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, self._size)
            if not self._writer.isOpened():
                raise InputError(f"cannot write video {self.target} (no mp4v encoder in this OpenCV build?)")
        if (image_bgr.shape[1], image_bgr.shape[0]) != self._size:
            image_bgr = cv2.resize(image_bgr, self._size, interpolation=cv2.INTER_AREA)
        self._writer.write(image_bgr)

    def close(self) -> Path | None:
        """Finalize and rename to ``target``; the path, or None when no frame was written."""
        if self._pending:
            self._flush_pending()
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.release()
        if not self.tmp.exists():
            return self.target if self.target.exists() and self.frames else None
        if self.frames == 0:
            with contextlib.suppress(OSError):
                self.tmp.unlink()
            return None
        os.chmod(self.tmp, 0o644)
        os.replace(self.tmp, self.target)
        return self.target

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class JsonLinesWriter:
    """One JSON object per line, each written whole and flushed, so a reader (or a run stopped early)
    only ever sees complete lines."""

    def __init__(self, target: str | os.PathLike) -> None:
        self.target = Path(target)
        self.lines = 0
        try:
            self.target.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.target, "w", encoding="utf-8")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise InputError(f"cannot write to {self.target}: {exc.strerror or exc}") from None

    def write(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, separators=(",", ":")) + "\n")
        self._fh.flush()
        self.lines += 1

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> JsonLinesWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _rounded(array: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(array, np.float64), digits).tolist()


def pose_records(poses: Any) -> list[dict[str, Any]]:
    """Each pose as ``{keypoints: [[x, y, conf], ...], box: [x1, y1, x2, y2], score, id?}`` (pixels)."""
    ids = getattr(poses, "ids", None)
    records = []
    for person in range(len(poses)):
        record: dict[str, Any] = {
            "keypoints": _rounded(poses.keypoints[person], 2),  # (K, 3)
            "box": _rounded(poses.boxes[person], 2),  # (4,)
            "score": round(float(poses.scores[person]), 4),
        }
        if ids is not None:  # null while the tracker has not confirmed the person yet (its -1)
            record["id"] = int(ids[person]) if ids[person] >= 0 else None
        records.append(record)
    return records


def frame_record(result: Any, *, image: str | None = None) -> dict[str, Any]:
    """The JSON line of one processed frame: which frame, its time, frames dropped before it, poses."""
    record: dict[str, Any] = {
        "frame": int(getattr(result, "frame_index", 0)),
        "timestamp": getattr(result, "timestamp", None),
        "dropped": int(getattr(result, "dropped", 0) or 0),
    }
    if image is not None:
        record["image"] = image
    record["poses"] = pose_records(result.poses)
    return record


def coco_results(poses: Any, image_id: int) -> list[dict[str, Any]]:
    """COCO keypoint results of one image, with the person box as ``bbox`` [x, y, w, h]."""
    results = []
    for person in range(len(poses)):
        x1, y1, x2, y2 = (float(v) for v in poses.boxes[person])
        results.append({
            "image_id": int(image_id),
            "category_id": 1,
            "keypoints": [round(float(v), 3) for v in np.asarray(poses.keypoints[person]).reshape(-1)],
            "score": round(float(poses.scores[person]), 5),
            "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
        })
    return results


def write_coco_results(target: str | os.PathLike, results: list[dict[str, Any]]) -> Path:
    write_text_atomic(target, json.dumps(results))
    return Path(target)


def draw_result(image_bgr: np.ndarray, poses: Any, preset: Any) -> np.ndarray:
    """Skeletons and boxes (``kapao_edge.viz``), plus each tracked person's id above its box."""
    import cv2

    from kapao_edge.viz import draw_poses

    canvas = draw_poses(image_bgr, poses.keypoints, poses.boxes, poses.scores, preset)
    ids = getattr(poses, "ids", None)
    if ids is not None:
        for person, track_id in enumerate(ids):
            x1, _, _, y2 = (int(round(v)) for v in poses.boxes[person])
            cv2.putText(canvas, f"id {int(track_id)}", (x1, max(y2 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        (0, 255, 255), 1, cv2.LINE_AA)
    return canvas
