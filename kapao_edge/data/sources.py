"""Image and video sources: one file, a folder of images, or a video, read as BGR frames.

Every frame comes out as 3-channel uint8 BGR whatever the file holds (grayscale, alpha), so the
rest of the pipeline has one image type to handle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal

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
    """One decoded image: where it came from, its position in the stream, and its pixels."""

    path: Path
    index: int  # position in the folder or video, from 0
    image_bgr: np.ndarray  # (H, W, 3) uint8

    @property
    def name(self) -> str:
        """A file-name-like label: the image's name, or ``<video stem>_<frame:06d>`` for video frames."""
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


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode one image file to (H, W, 3) uint8 BGR (cv2's default decode, as the official loaders use)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist or is not a file")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey and alpha images come back as 3-channel BGR
    if image is None:
        raise InputError(f"cannot decode {path} as an image (corrupt file or unsupported format)")
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
