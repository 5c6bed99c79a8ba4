"""Activation statistics from ONNX Runtime's calibrators, cached on disk.

Calibration is the slow part of quantization (hundreds of images through an instrumented graph). The
statistics depend only on the model file, the image set and the settings, so they are stored under a
key made of the three hashes; a second run with the same inputs reads them back, a changed image set or
model misses the cache. Files are ONNX Runtime's own calibration-cache JSON (``save_tensors_data``),
so ``quantize_static(calibration_cache_path=...)`` consumes them unchanged.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kapao_edge.calibration.reader import CalibrationImages
from kapao_edge.errors import InputError
from kapao_edge.utils.io import sha256_file, write_text_atomic

METHODS = ("meanmax", "minmax", "entropy", "percentile")
DEFAULT_METHOD = "meanmax"
CACHE_VERSION = 1
HISTOGRAM_METHODS = ("entropy", "percentile")
# ORT's histogram calibrators hold every instrumented output of one ``collect_data`` call in memory
# before binning it: 500 scenes at 448 px ran a 24 GB machine out of memory. They are fed this many
# batches per call instead; the histograms merge across calls, so only peak memory changes.
HISTOGRAM_CHUNK_BATCHES = 32


@dataclass
class CalibrationStats:
    ranges: Any  # onnxruntime.quantization.TensorsData
    method: str
    ranges_path: Path  # ORT calibration-cache JSON
    key: str
    from_cache: bool
    summary: dict[str, Any] = field(default_factory=dict)


def ort_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    table = {
        "meanmax": CalibrationMethod.MinMax,  # with moving_average: see method_options
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }
    if name not in table:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {name!r}")
    return table[name]


def method_options(name: str) -> dict[str, Any]:
    """ORT calibrator options a method implies.

    ``meanmax`` ranges are the mean over calibration batches of each batch's min and max (ORT's MinMax
    calibrator with ``moving_average``), where ``minmax`` takes the extremes of all of them. A network
    may answer a few images with activations far outside its usual range (the bundled model reaches
    285 on 4 of 40 scenes where the rest stay under 8); one global extreme then sets a step so coarse
    that ordinary activations round to zero, and AP collapses. ``entropy`` and ``percentile`` pool all
    values into one histogram and do not escape it either when such images are a tenth of the set.
    """
    return {"moving_average": True} if name == "meanmax" else {}


def cache_key(model_sha256: str, data_hash: str, settings: dict[str, Any]) -> str:
    payload = json.dumps({"v": CACHE_VERSION, "model": model_sha256, "data": data_hash, "settings": settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def calibrate(
    model_path: str | Path,
    images: CalibrationImages,
    *,
    method: str = DEFAULT_METHOD,
    op_types: list[str] | None = None,
    cache_dir: str | Path,
    options: dict[str, Any] | None = None,
) -> CalibrationStats:
    """Tensor ranges of ``model_path`` on ``images`` (ORT's calibrator), read from or written to the cache.

    ``op_types`` limits the instrumented tensors to the inputs/outputs of those ops (None: all float
    tensors, what FP16 overflow detection needs); ``options`` go to ORT's ``create_calibrator``.
    """
    model_path = Path(model_path)
    ort_method(method)  # refuse unknown names before any work
    options = {**method_options(method), **(options or {})}
    settings = {
        "method": method,
        "op_types": sorted(op_types) if op_types else None,
        "options": options,
        "input": [images.spec.batch, images.spec.height, images.spec.width, images.spec.imgsz],
    }
    if method in HISTOGRAM_METHODS:
        settings["chunk_batches"] = HISTOGRAM_CHUNK_BATCHES  # merged histograms bin slightly differently
    model_sha = sha256_file(model_path)
    data_hash = images.data_hash
    key = cache_key(model_sha, data_hash, settings)
    cache_dir = Path(cache_dir)
    ranges_path = cache_dir / f"calib-{key[:20]}.json"
    meta_path = cache_dir / f"calib-{key[:20]}.meta.json"
    summary = {
        "method": method,
        "images": len(images.paths),
        "data_hash": data_hash,
        "model_sha256": model_sha,
        "seed": images.seed,
        # Labelled, so the report never reads as a 4-D shape like [1, 640, 640, 640].
        "input": {
            "shape": [images.spec.batch, 3, images.spec.height, images.spec.width],
            "letterbox_long_side": images.spec.imgsz,
        },
    }

    from onnxruntime.quantization.calibrate import load_tensors_data, save_tensors_data

    if ranges_path.is_file() and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if meta.get("key") == key:
                ranges = load_tensors_data(ranges_path)
                summary.update(skipped=meta.get("summary", {}).get("skipped", 0))
                return CalibrationStats(ranges, method, ranges_path, key, True, summary)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a damaged cache is recomputed and overwritten

    ranges = _run_calibrator(model_path, images, method, op_types, options)
    summary["skipped"] = len(images.skipped)
    summary["skipped_files"] = images.skipped[:20]
    cache_dir.mkdir(parents=True, exist_ok=True)
    save_tensors_data(ranges, ranges_path)  # ORT writes it atomically itself
    write_text_atomic(meta_path, json.dumps({"key": key, "settings": settings, "summary": summary}, indent=2, sort_keys=True))
    return CalibrationStats(ranges, method, ranges_path, key, False, summary)


def _run_calibrator(
    model_path: Path, images: CalibrationImages, method: str, op_types: list[str] | None, options: dict[str, Any]
) -> Any:
    from onnxruntime.quantization import create_calibrator

    with tempfile.TemporaryDirectory(prefix="kapao-calib-") as work:
        calibrator = create_calibrator(
            model_path,
            op_types,
            augmented_model_path=str(Path(work) / "augmented.onnx"),
            calibrate_method=ort_method(method),
            providers=["CPUExecutionProvider"],
            extra_options=options,
        )
        images.rewind()
        if method in HISTOGRAM_METHODS:
            chunks = _Chunks(images, HISTOGRAM_CHUNK_BATCHES)
            while chunks.start_next():
                calibrator.collect_data(chunks)
        else:
            calibrator.collect_data(images)  # MinMax merges calls by EMA, not meanmax's mean: one call
        ranges = calibrator.compute_data()
        del calibrator
    return ranges


class _Chunks:
    """A data reader that hands ORT at most ``size`` batches of ``reader`` per ``collect_data`` call."""

    def __init__(self, reader: CalibrationImages, size: int) -> None:
        self._reader, self._size, self._left = reader, size, 0
        self._pending = reader.get_next()

    def start_next(self) -> bool:
        """Open the next chunk; False once the reader is exhausted (ORT refuses an empty call)."""
        self._left = self._size
        return self._pending is not None

    def get_next(self) -> dict[str, Any] | None:
        if self._left == 0 or self._pending is None:
            return None
        batch, self._pending = self._pending, self._reader.get_next()
        self._left -= 1
        return batch


def tensor_abs_max(stats: CalibrationStats) -> dict[str, float]:
    """Tensor name -> largest magnitude seen (from min/max ranges)."""
    import numpy as np

    result: dict[str, float] = {}
    for name in stats.ranges:
        low, high = stats.ranges[name].range_value
        result[name] = float(max(np.max(np.abs(low)), np.max(np.abs(high))))
    return result
