"""Frame sources: image files, folders, globs, videos, cameras, stream URLs and iterators of arrays.

Every frame comes out as 3-channel uint8 BGR whatever the file holds (grayscale, alpha), so the
rest of the pipeline has one image type to handle. ``iter_frames`` covers files on disk (val,
calibration, tests); ``open_source`` covers everything ``predict`` and ``stream`` accept, including live
sources that can stall and are retried a bounded number of times.
"""

from __future__ import annotations

import glob as globlib
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import cv2
import numpy as np

from kapao_edge.data.preprocess import as_bgr
from kapao_edge.errors import InputError

# The suffixes the official loaders accept.
IMAGE_SUFFIXES = frozenset({".bmp", ".jpg", ".jpeg", ".png", ".tif", ".tiff", ".dng", ".webp", ".mpo"})
VIDEO_SUFFIXES = frozenset({".mov", ".avi", ".mp4", ".mpg", ".mpeg", ".m4v", ".wmv", ".mkv"})

SourceKind = Literal["image", "folder", "video"]


@dataclass(frozen=True)
class Frame:
    """One decoded image: where it came from, its position in the stream, its pixels and its time."""

    path: Path | None  # the image or video file; None for cameras, URLs and arrays
    index: int  # position in the folder, video or stream, from 0 (frames a source skips keep their index)
    image_bgr: np.ndarray  # (H, W, 3) uint8
    timestamp: float | None = None  # seconds: source time for videos and cameras, None for still images

    @property
    def name(self) -> str:
        """A file-name-like label: the image's name, or ``<stem>_<frame:06d>`` for video and stream frames."""
        if self.path is None:
            return f"frame_{self.index:06d}"
        if self.path.suffix.lower() in VIDEO_SUFFIXES:
            return f"{self.path.stem}_{self.index:06d}"
        return self.path.name


def _supported() -> str:
    return ", ".join(sorted(IMAGE_SUFFIXES | VIDEO_SUFFIXES))


def source_kind(source: str | os.PathLike) -> SourceKind:
    """Classify a path, raising InputError for anything that cannot be read as frames."""
    path = Path(source)
    if not path.exists():
        raise InputError(f"{path} does not exist")
    if path.is_dir():
        return "folder"
    suffix = path.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in VIDEO_SUFFIXES:
        return "video"
    raise InputError(f"{path} has an unsupported extension {suffix or '(none)'!r}; supported: {_supported()}")


class BadImageError(InputError):
    """An image file that cannot be decoded, or that ends before its data does (truncated)."""


def _is_truncated(path: Path) -> bool:
    """True when a JPEG lacks its end-of-image marker or a PNG its IEND chunk (a cut-off download)."""
    suffix = path.suffix.lower()
    if suffix not in (".jpg", ".jpeg", ".png"):
        return False
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64))
        tail = fh.read().rstrip(b"\x00\r\n ")
    if not tail:
        return False
    if suffix in (".jpg", ".jpeg"):
        return not tail.endswith(b"\xff\xd9")
    if suffix == ".png":
        return b"IEND" not in tail[-12:]
    return False


def read_image(path: str | os.PathLike, *, allow_truncated: bool = True) -> np.ndarray:
    """Decode one image file to (H, W, 3) uint8 BGR (cv2's default decode, as the official loaders use).

    cv2 decodes a truncated JPEG into a partly grey picture without an error; ``allow_truncated=False``
    (what ``open_source`` uses) refuses such files by their missing end marker instead.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey and alpha images come back as 3-channel BGR
    truncated = _is_truncated(path)
    if image is None:
        if truncated:
            raise BadImageError(f"cannot decode {path}: the file is truncated")
        raise BadImageError(f"cannot decode {path} as an image (corrupt file or unsupported format)")
    if truncated and not allow_truncated:
        raise BadImageError(f"{path} is truncated (its end marker is missing); the picture would be incomplete")
    return as_bgr(image)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name; other files are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    images = sorted(
        (p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
        key=lambda p: p.name,
    )
    if not images:
        raise InputError(f"no images in {folder}; supported: {', '.join(sorted(IMAGE_SUFFIXES))}")
    return images


def _open_video(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise InputError(f"cannot open {path} as a video (corrupt file or missing codec)")
    return capture


def _iter_video(path: Path) -> Iterator[Frame]:
    capture = _open_video(path)
    try:
        index = 0
        while True:
            ok, image = capture.read()
            if not ok:
                break
            yield Frame(path, index, as_bgr(image))
            index += 1
    finally:
        capture.release()
    if index == 0:
        raise InputError(f"no frame of {path} could be decoded")


def _iter_images(paths: list[Path]) -> Iterator[Frame]:
    for index, path in enumerate(paths):
        yield Frame(path, index, read_image(path))


def iter_frames(source: str | os.PathLike) -> Iterator[Frame]:
    """Frames of an image file, a folder of images (sorted by name) or a video file.

    Problems found without decoding (missing path, empty folder, unknown extension, video that will
    not open) raise here, before the first frame; a file that fails to decode raises when reached.
    """
    path = Path(source)
    kind = source_kind(path)
    if kind == "image":
        return _iter_images([path])
    if kind == "folder":
        return _iter_images(list_images(path))
    _open_video(path).release()  # fail now rather than at the first next()
    return _iter_video(path)


def count_frames(source: str | os.PathLike) -> int | None:
    """How many frames ``iter_frames`` will yield, for progress bars; None if a video does not say."""
    path = Path(source)
    kind = source_kind(path)
    if kind == "image":
        return 1
    if kind == "folder":
        return len(list_images(path))
    capture = _open_video(path)
    try:
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()
    return count if count > 0 else None


# --- open_source: everything predict and stream accept -------------------------------------------

StreamKind = Literal["image", "folder", "glob", "video", "camera", "url", "arrays"]

LIVE_URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "udp", "tcp", "srt")
_GLOB_CHARS = frozenset("*?[")


class SourceError(InputError):
    """A source that opened but stopped delivering frames (a camera unplugged, a stream gone)."""


def _redact(url: str) -> str:
    """``scheme://user:***@host/...``: stream URLs often carry a password that must not reach logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


class _QuietCv2:
    """Silence OpenCV's own log lines while a capture opens, so a failure reads as our one line."""

    def __enter__(self):
        self._level = None
        logging = getattr(getattr(cv2, "utils", None), "logging", None)
        if logging is not None:
            self._level = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._level is not None:
            cv2.utils.logging.setLogLevel(self._level)


class FrameSource:
    """Frames of one source, with what a consumer needs to know about it.

    ``kind`` and ``name`` (a label for output files), ``live`` (frames arrive in real time and are not
    waited for: stale ones may be dropped), ``fps`` (None when unknown), ``total`` (frame count, None when
    unknown) and ``skipped`` ((name, reason) of every bad image passed over). Iterate once; ``close()``
    (or ``with``) releases a camera or stream.
    """

    kind: StreamKind
    name: str
    live: bool = False
    fps: float | None = None
    total: int | None = None

    def __init__(self) -> None:
        self.skipped: list[tuple[str, str]] = []
        self.on_warning = lambda message: warnings.warn(message, stacklevel=3)
        self.closed = False

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds; safe to call twice."""
        self.closed = True

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def describe(self) -> str:
        return f"{self.kind} {self.name}"


class ImageFilesSource(FrameSource):
    """Still images in a fixed order; a bad file is skipped with one warning (``strict``: an error)."""

    def __init__(self, paths: list[Path], *, kind: StreamKind, name: str, strict: bool = False) -> None:
        super().__init__()
        self.paths, self.kind, self.name, self.strict = paths, kind, name, strict
        self.total = len(paths)

    def __iter__(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            try:
                image = read_image(path, allow_truncated=False)
            except BadImageError as exc:
                if self.strict:
                    raise
                self.skipped.append((path.name, str(exc)))
                self.on_warning(f"skipped {exc}")
                continue
            yield Frame(path, index, image, None)


class CaptureSource(FrameSource):
    """A cv2.VideoCapture: a video file, a camera or a stream URL.

    A live capture that stops returning frames is reopened up to ``retries`` times, ``retry_delay``
    seconds apart, then fails with one ``SourceError``; a file simply ends.
    """

    def __init__(self, target: Any, *, kind: StreamKind, name: str, label: str, live: bool,
                 retries: int = 3, retry_delay: float = 0.5, timeout_s: float = 5.0, path: Path | None = None) -> None:
        super().__init__()
        self.target, self.kind, self.name, self.label, self.live = target, kind, name, label, live
        self.retries, self.retry_delay, self.timeout_s, self.path = retries, retry_delay, timeout_s, path
        self._capture: cv2.VideoCapture | None = self._open()
        fps = float(self._capture.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0.0 < fps < 1000.0 else None
        count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        self.total = count if count > 0 and kind != "camera" else None

    def _open(self) -> cv2.VideoCapture:
        with _QuietCv2():
            if self.kind == "url":
                # FFmpeg logs each failed connection itself; keep a failure to our one line
                os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
                milliseconds = int(self.timeout_s * 1000)
                params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, milliseconds, cv2.CAP_PROP_READ_TIMEOUT_MSEC, milliseconds]
                capture = cv2.VideoCapture(self.target, cv2.CAP_FFMPEG, params)
            else:
                capture = cv2.VideoCapture(self.target)
        if capture.isOpened() and self.kind == "camera":
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # where the driver allows: no queue of stale frames
        if not capture.isOpened():
            capture.release()
            if self.kind == "camera":
                raise InputError(f"cannot open camera {self.target}: no such device, or it is busy")
            if self.kind == "url":
                raise InputError(f"cannot open stream {self.label}: unreachable, refused, or not a video stream")
            raise InputError(f"cannot open {self.label} as a video (corrupt file or missing codec)")
        return capture

    def _timestamp(self, index: int) -> float | None:
        if self.kind == "camera":
            return time.time()  # camera clocks differ by driver; wall-clock capture time is comparable
        position = float(self._capture.get(cv2.CAP_PROP_POS_MSEC) or 0.0) / 1000.0
        if position > 0.0 or index == 0:
            return position
        if self.fps:
            return index / self.fps
        return time.time() if self.live else None

    def __iter__(self) -> Iterator[Frame]:
        index = failures = 0
        while self._capture is not None:
            ok, image = self._capture.read()
            if ok and image is not None:
                failures = 0
                yield Frame(self.path, index, as_bgr(image), self._timestamp(index))
                index += 1
                continue
            if not self.live:
                break
            if failures >= self.retries:
                attempts = f"{self.retries} retr{'y' if self.retries == 1 else 'ies'}"
                raise SourceError(f"{self.label} stopped delivering frames after frame {index}; gave up after {attempts}")
            failures += 1
            time.sleep(self.retry_delay)
            self._capture.release()
            try:
                self._capture = self._open()  # quiet: a failed reopen counts as a retry, not a log line
            except InputError:
                self._capture = cv2.VideoCapture()  # not opened: the next read fails and counts as a retry
        if index == 0 and self.kind == "video":
            raise InputError(f"no frame of {self.label} could be decoded")

    def close(self) -> None:
        super().close()
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.release()


class ArraySource(FrameSource):
    """Any iterable of BGR uint8 arrays (or ``Frame`` objects), e.g. an app's own capture loop."""

    kind: StreamKind = "arrays"

    def __init__(self, frames: Iterable[Any], *, live: bool = False, fps: float | None = None, name: str = "frames") -> None:
        super().__init__()
        self.frames, self.live, self.fps, self.name = frames, live, fps, name
        if isinstance(frames, np.ndarray):
            self.total = 1 if frames.ndim in (2, 3) else int(frames.shape[0])
        elif hasattr(frames, "__len__"):
            self.total = len(frames)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Frame]:
        frames = self.frames
        if isinstance(frames, np.ndarray) and frames.ndim in (2, 3):
            frames = [frames]  # one image, not an iterable of rows
        for index, item in enumerate(frames):
            if isinstance(item, Frame):
                yield item
                continue
            if not isinstance(item, np.ndarray) or item.dtype != np.uint8 or item.ndim not in (2, 3) or item.size == 0:
                raise InputError(
                    f"frame {index} is not an (H, W, 3) uint8 BGR array: got "
                    f"{type(item).__name__} {getattr(item, 'shape', '')} {getattr(item, 'dtype', '')}".rstrip()
                )
            yield Frame(None, index, as_bgr(item), time.time() if self.live else None)

    def close(self) -> None:
        super().close()
        close = getattr(self.frames, "close", None)
        if callable(close):
            close()


def _is_url(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isalpha() and len(scheme) > 1


def _camera_index(source: Any) -> int | None:
    if isinstance(source, (int, np.integer)) and not isinstance(source, bool):
        return int(source)
    if isinstance(source, str) and source.strip().isdigit():
        return int(source.strip())
    return None


def open_source(
    source: Any,
    *,
    strict: bool = False,
    live: bool | None = None,
    retries: int = 3,
    retry_delay: float = 0.5,
    timeout_s: float = 5.0,
) -> FrameSource:
    """Open ``source`` as a ``FrameSource``, raising ``InputError`` now for anything that cannot work.

    Accepts a video or image file, a folder of images, a glob pattern (``"frames/*.jpg"``), a camera
    index (``0`` or ``"0"``), an RTSP/RTMP/HTTP(S) URL, an iterable of BGR arrays, or a ``FrameSource``.
    ``live`` overrides the guess (cameras, RTSP and endless HTTP streams are live). ``strict`` makes a
    bad image file an error instead of a skipped frame; ``retries``/``retry_delay`` bound how long a
    stalled live source is waited for; ``timeout_s`` bounds opening and reading a URL.
    """
    if isinstance(source, FrameSource):
        if live is not None:
            source.live = live
        return source
    if retries < 0 or retry_delay < 0 or timeout_s <= 0:
        raise InputError("retries and retry_delay must be >= 0 and timeout_s > 0")
    index = _camera_index(source)
    if index is not None:
        capture = CaptureSource(index, kind="camera", name=f"camera{index}", label=f"camera {index}",
                                live=True if live is None else live, retries=retries, retry_delay=retry_delay)
        return capture
    if isinstance(source, str) and _is_url(source):
        scheme = source.partition("://")[0].lower()
        label = _redact(source)
        stem = Path(source.split("?", 1)[0].rstrip("/")).stem or "stream"
        capture = CaptureSource(source, kind="url", name=stem, label=label, live=True, retries=retries,
                                retry_delay=retry_delay, timeout_s=timeout_s)
        if live is None:  # an HTTP file says how long it is; a live HTTP stream does not
            capture.live = scheme in LIVE_URL_SCHEMES or capture.total is None
            capture.total = None if capture.live else capture.total
        else:
            capture.live = live
        return capture
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        path = Path(text)
        if not path.exists() and _GLOB_CHARS & set(text):
            paths = sorted(
                (Path(p) for p in globlib.glob(text, recursive=True)
                 if Path(p).is_file() and Path(p).suffix.lower() in IMAGE_SUFFIXES),
                key=str,
            )
            if not paths:
                raise InputError(f"no images match {text}; supported: {', '.join(sorted(IMAGE_SUFFIXES))}")
            return ImageFilesSource(paths, kind="glob", name=path.parent.name or "images", strict=strict)
        kind = source_kind(path)
        if kind == "image":
            return ImageFilesSource([path], kind="image", name=path.stem, strict=strict)
        if kind == "folder":
            return ImageFilesSource(list_images(path), kind="folder", name=path.resolve().name or "images", strict=strict)
        capture = CaptureSource(str(path), kind="video", name=path.stem, label=str(path), live=bool(live),
                                retries=retries, retry_delay=retry_delay, path=path)
        capture.total = capture.total if not capture.live else None
        return capture
    if isinstance(source, Iterable):
        return ArraySource(source, live=bool(live))
    raise InputError(f"cannot read frames from a {type(source).__name__}")
