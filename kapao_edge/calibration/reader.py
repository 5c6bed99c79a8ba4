"""Calibration images: where they come from, which ones are used, and how they reach the network.

Calibration must see exactly what inference sees, so images go through the validation
pre-processing (long side to imgsz, letterbox) and are batched to the ONNX input shape. The sample is
seeded, and its fingerprint (names, sizes, mtimes) keys the statistics cache.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import cv2
import numpy as np

from kapao_edge.data import IMAGE_SUFFIXES, check_input_size, list_images, prepare_val
from kapao_edge.errors import InputError

DEFAULT_CALIBRATION_IMAGES = 500
DEFAULT_DYNAMIC_IMGSZ = 640
MIN_READABLE_FRACTION = 0.5  # fewer decodable images than this share of the sample is an error


def collect_image_paths(source: str | os.PathLike) -> list[Path]:
    """Image files of a folder (or of a dataset folder's images/), of a COCO annotations file (its listed images) or of a list file."""
    path = Path(source)
    if not path.exists():
        raise InputError(f"calibration source {path} does not exist")
    if path.is_dir():
        if (path / "images").is_dir() and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir()):
            path = path / "images"  # a dataset folder, as synth writes it
        return list_images(path)
    if path.suffix.lower() == ".json":
        return _annotation_images(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return [path]
    return _list_file_images(path)


def _annotation_images(path: Path) -> list[Path]:
    from kapao_edge.data.coco import load_keypoint_dataset

    dataset = load_keypoint_dataset(path)  # refuses files without keypoint annotations
    if not dataset.images:
        raise InputError(f"{path} lists no images to calibrate on")
    return [record.path for record in dataset.images]


def _list_file_images(path: Path) -> list[Path]:
    """One image path per line; relative paths are relative to the list file; '#' starts a comment."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the image list {path}: {exc}") from None
    entries = [line.split("#", 1)[0].strip() for line in lines]
    paths = [Path(entry) if Path(entry).is_absolute() else path.parent / entry for entry in entries if entry]
    if not paths:
        raise InputError(f"the image list {path} names no images")
    return paths


def sample_paths(paths: list[Path], count: int, seed: int) -> tuple[list[Path], list[Path]]:
    """(sample, rest): ``count`` paths drawn with ``seed`` and the others, both in the input order."""
    if count < 1:
        raise InputError(f"the number of calibration images must be >= 1, got {count}")
    ordered = sorted(paths, key=str)
    if count >= len(ordered):
        return ordered, []
    chosen = set(np.random.default_rng(seed).choice(len(ordered), size=count, replace=False).tolist())
    sample = [p for i, p in enumerate(ordered) if i in chosen]
    rest = [p for i, p in enumerate(ordered) if i not in chosen]
    return sample, rest


def fingerprint(paths: list[Path]) -> str:
    """A hash of file names, sizes and modification times: changes when the image set changes."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = path.stat()
            digest.update(f"{path.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path.name}\0missing\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class InputSpec:
    """The network input a calibration batch must match."""

    name: str
    batch: int
    height: int
    width: int
    imgsz: int  # long side given to the validation resize

    @classmethod
    def from_onnx(cls, model_path: str | os.PathLike, imgsz: int | None = None) -> "InputSpec":
        """Fixed dims are respected; a dynamic batch becomes 1, dynamic H/W a square of ``imgsz``."""
        import onnx

        model = onnx.load(str(model_path), load_external_data=False)
        graph_input = model.graph.input[0]
        dims = [d.dim_value if d.HasField("dim_value") else None for d in graph_input.type.tensor_type.shape.dim]
        if len(dims) != 4:
            raise InputError(f"{model_path}: expected an input (B, 3, H, W), got rank {len(dims)}")
        batch = dims[0] or 1
        if dims[2] and dims[3]:
            height, width = dims[2], dims[3]
            long_side = max(height, width) if imgsz is None else imgsz
        else:
            long_side = imgsz or DEFAULT_DYNAMIC_IMGSZ
            height, width = check_input_size(long_side)
        return cls(graph_input.name, int(batch), int(height), int(width), int(long_side))


class CalibrationImages:
    """A seeded sample of calibration images, pre-processed and batched for one network input.

    Also an ONNX Runtime ``CalibrationDataReader`` (``get_next``/``rewind``), so ORT's calibrators
    read it directly. Unreadable files are skipped and counted; too few readable ones is an error.
    """

    def __init__(
        self,
        source: str | os.PathLike | list[Path],
        spec: InputSpec,
        *,
        count: int = DEFAULT_CALIBRATION_IMAGES,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        all_paths = list(source) if isinstance(source, list) else collect_image_paths(source)
        self.paths, self.held_out = sample_paths(all_paths, count, seed)
        self.spec = spec
        self.seed = seed
        self.progress = progress
        self.images_read = 0  # decoded and fed, counting every pass
        self.skipped: list[str] = []
        self._iterator: Iterator[np.ndarray] | None = None
        self._bar: Any = None

    @property
    def data_hash(self) -> str:
        return fingerprint(self.paths)

    def __len__(self) -> int:
        return math.ceil(len(self.paths) / self.spec.batch)

    def batches(self) -> Iterator[np.ndarray]:
        """(B, 3, H, W) float32 batches; a short last batch is filled by repeating its own images."""
        skipped: list[str] = []
        readable = 0
        pending: list[np.ndarray] = []
        for path in self.paths:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                skipped.append(path.name)
                continue
            chw, _ = prepare_val(image, self.spec.imgsz, batch_hw=(self.spec.height, self.spec.width))  # (3, H, W)
            pending.append(chw)
            readable += 1
            self.images_read += 1
            if self._bar is not None:
                self._bar.advance(self._task)
            if len(pending) == self.spec.batch:
                yield np.stack(pending)  # (B, 3, H, W)
                pending = []
        self.skipped = skipped
        minimum = max(1, math.ceil(MIN_READABLE_FRACTION * len(self.paths)))
        if readable < minimum:
            raise InputError(
                f"only {readable} of {len(self.paths)} calibration images could be decoded "
                f"(at least {minimum} needed); unreadable: {', '.join(skipped[:5])}{' ...' if len(skipped) > 5 else ''}"
            )
        if pending:
            while len(pending) < self.spec.batch:
                pending.append(pending[len(pending) % max(len(pending), 1)])
            yield np.stack(pending)  # (B, 3, H, W)

    # ONNX Runtime CalibrationDataReader protocol
    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._iterator is None:
            self._start_bar()
            self._iterator = self.batches()
        try:
            return {self.spec.name: next(self._iterator)}
        except StopIteration:
            self._stop_bar()
            return None
        except BaseException:
            self._stop_bar()
            raise

    def rewind(self) -> None:
        self._iterator = None

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        """A fresh pass as ORT feeds (``{input name: batch}``), independent of ``get_next``."""
        return ({self.spec.name: batch} for batch in self.batches())

    def _start_bar(self) -> None:
        if not self.progress:
            return
        from rich.progress import Progress

        self._bar = Progress(transient=True)
        self._task = self._bar.add_task("calibrating", total=len(self.paths))
        self._bar.start()

    def _stop_bar(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
