"""The calibration cache: a second run reads statistics instead of calibrating; changes invalidate it."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from kapao_edge.calibration.cache import calibrate
from kapao_edge.calibration.reader import CalibrationImages, InputSpec


def _images(folder: Path, model: Path, count: int = 4) -> CalibrationImages:
    return CalibrationImages(folder, InputSpec.from_onnx(model, 128), count=count, seed=0)


def test_second_run_reads_the_cache_without_touching_an_image(image_copy, tiny_onnx: Path, tmp_path: Path):
    folder = image_copy(4)
    cache = tmp_path / "cache"
    first_images = _images(folder, tiny_onnx)
    first = calibrate(tiny_onnx, first_images, op_types=["Conv"], cache_dir=cache)
    assert not first.from_cache and first_images.images_read == 4
    assert first.ranges_path.is_file() and len(list(first.ranges)) > 10

    second_images = _images(folder, tiny_onnx)
    second = calibrate(tiny_onnx, second_images, op_types=["Conv"], cache_dir=cache)
    assert second.from_cache
    assert second_images.images_read == 0  # the calibrator never asked for a batch
    name = next(iter(first.ranges))
    for cached, computed in zip(second.ranges[name].range_value, first.ranges[name].range_value):
        np.testing.assert_allclose(np.asarray(cached, np.float32), np.asarray(computed, np.float32))


def test_a_changed_image_set_or_method_misses_the_cache(image_copy, tiny_onnx: Path, tmp_path: Path, synth_set: Path):
    folder = image_copy(4)
    cache = tmp_path / "cache"
    first = calibrate(tiny_onnx, _images(folder, tiny_onnx), op_types=["Conv"], cache_dir=cache)

    replacement = sorted((synth_set / "images").iterdir())[-1]
    victim = sorted(folder.iterdir())[0]
    shutil.copyfile(replacement, victim)  # same name, other content
    changed_images = _images(folder, tiny_onnx)
    changed = calibrate(tiny_onnx, changed_images, op_types=["Conv"], cache_dir=cache)
    assert not changed.from_cache and changed_images.images_read == 4
    assert changed.key != first.key

    entropy = calibrate(tiny_onnx, _images(folder, tiny_onnx), method="percentile", op_types=["Conv"], cache_dir=cache)
    assert not entropy.from_cache and entropy.key != changed.key


def test_meanmax_averages_per_batch_extremes_where_minmax_takes_the_global_ones(image_copy, tiny_onnx: Path, tmp_path: Path):
    folder = image_copy(4)
    mean = calibrate(tiny_onnx, _images(folder, tiny_onnx), method="meanmax", op_types=["Conv"], cache_dir=tmp_path)
    extreme = calibrate(tiny_onnx, _images(folder, tiny_onnx), method="minmax", op_types=["Conv"], cache_dir=tmp_path)
    assert mean.key != extreme.key and not extreme.from_cache
    narrower = 0
    for name in extreme.ranges:
        low, high = (np.asarray(v, np.float64) for v in mean.ranges[name].range_value)
        global_low, global_high = (np.asarray(v, np.float64) for v in extreme.ranges[name].range_value)
        assert np.all(low >= global_low - 1e-6) and np.all(high <= global_high + 1e-6)
        narrower += bool(np.any(high < global_high - 1e-6) or np.any(low > global_low + 1e-6))
    assert narrower > 0  # four different scenes cannot share every extreme


def test_an_unknown_method_is_refused_before_any_work(image_copy, tiny_onnx: Path, tmp_path: Path):
    import pytest

    from kapao_edge.errors import InputError

    images = _images(image_copy(2), tiny_onnx)
    with pytest.raises(InputError, match="--method must be one of meanmax, minmax, entropy, percentile"):
        calibrate(tiny_onnx, images, method="kl", cache_dir=tmp_path / "cache")
    assert images.images_read == 0 and not (tmp_path / "cache").exists()


def test_histogram_methods_read_every_image_in_chunks_and_agree_with_one_pass(
    image_copy, tiny_onnx: Path, tmp_path: Path, monkeypatch
):
    """Chunks bound the histogram calibrators' memory; merged histograms must give about the same ranges."""
    import kapao_edge.calibration.cache as cache_module

    folder = image_copy(5)
    one_pass = calibrate(tiny_onnx, _images(folder, tiny_onnx, 5), method="percentile", op_types=["Conv"],
                         cache_dir=tmp_path / "one")
    monkeypatch.setattr(cache_module, "HISTOGRAM_CHUNK_BATCHES", 2)  # 5 single-image batches: 2 + 2 + 1
    chunked_images = _images(folder, tiny_onnx, 5)
    chunked = calibrate(tiny_onnx, chunked_images, method="percentile", op_types=["Conv"], cache_dir=tmp_path / "two")
    assert chunked_images.images_read == 5 and chunked.key != one_pass.key
    assert set(chunked.ranges) == set(one_pass.ranges)
    for name in one_pass.ranges:
        low, high = (float(np.asarray(v).item()) for v in one_pass.ranges[name].range_value)
        chunk_low, chunk_high = (float(np.asarray(v).item()) for v in chunked.ranges[name].range_value)
        width = high - low
        assert abs(chunk_low - low) <= 0.1 * width and abs(chunk_high - high) <= 0.1 * width, name
