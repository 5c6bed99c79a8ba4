"""cuda-python buffers, streams, events and graphs: run wherever a CUDA device and cuda-python exist.

TensorRT is not needed: these are the pieces the TensorRT runner is built from.
"""

from __future__ import annotations

import numpy as np
import pytest

from kapao_edge.engines.cuda_buffers import DeviceBuffer, PinnedArray, Stream, device_count, import_cudart
from kapao_edge.errors import EngineError


@pytest.fixture(scope="module")
def cudart():
    try:
        runtime = import_cudart()
    except EngineError:
        pytest.skip("cuda-python is not installed")
    if device_count(runtime) < 1:
        pytest.skip("no CUDA device")
    return runtime


def test_pinned_round_trip_through_the_device(cudart) -> None:
    stream = Stream(cudart)
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 96, 3), dtype=np.uint8)  # (B, H, W, 3)
    host_in, host_out = PinnedArray(cudart, frames.shape, np.uint8), PinnedArray(cudart, frames.shape, np.uint8)
    device = DeviceBuffer(cudart, host_in.nbytes)
    try:
        np.copyto(host_in.array, frames)
        start = stream.record()
        stream.upload(device, host_in)
        stream.download(host_out, device)
        end = stream.record()
        stream.synchronize()
        np.testing.assert_array_equal(host_out.array, frames)
        assert stream.elapsed_seconds(start, end) >= 0.0
        assert device.pointer % 256 == 0  # TensorRT's alignment for tensor addresses
    finally:
        for buffer in (host_in, host_out, device):
            buffer.free()
        stream.destroy()


def test_captured_graph_replays_its_copies(cudart) -> None:
    stream = Stream(cudart)
    source = PinnedArray(cudart, (1024,), np.float32)
    target = PinnedArray(cudart, (1024,), np.float32)
    device = DeviceBuffer(cudart, source.nbytes)
    try:
        graph = stream.capture(lambda: (stream.upload(device, source), stream.download(target, device)))
        for value in (1.5, -2.0):  # the graph reads the pinned buffer's contents at launch time
            source.array[:] = value
            graph.launch(stream)
            stream.synchronize()
            assert np.all(target.array == value)
        graph.destroy()
    finally:
        for buffer in (source, target, device):
            buffer.free()
        stream.destroy()


def test_freeing_twice_is_harmless(cudart) -> None:
    buffer = DeviceBuffer(cudart, 16)
    buffer.free()
    buffer.free()
    assert buffer.pointer == 0
