"""CUDA memory, streams, events and graphs through cuda-python, for engines that own their buffers (TensorRT).

Every cuda-python runtime call returns ``(err, *values)``; ``check`` turns a failure into one
EngineError naming the call. Pinned host buffers are exposed as NumPy arrays, so copying a frame in
is ``np.copyto`` and the upload is a DMA. Tests: tests/engines/test_cuda_buffers.py (run wherever a
CUDA device and cuda-python exist; TensorRT is not needed).
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from kapao_edge.errors import EngineError

NEEDS_CUDA_PYTHON = "device buffers need cuda-python (pip package cuda-python, or JetPack's) and a CUDA GPU"


def import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python before 12.6 kept the same API here
        except ImportError:
            raise EngineError(NEEDS_CUDA_PYTHON) from None
    return cudart


def check(cudart: Any, result: Any, what: str) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` tuple; a non-success code becomes an EngineError."""
    if not isinstance(result, tuple):
        result = (result,)
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        raise EngineError(f"CUDA {what} failed: {name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def device_count(cudart: Any) -> int:
    try:
        return int(check(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount"))
    except EngineError:
        return 0


class DeviceBuffer:
    """``nbytes`` of device memory (cudaMalloc aligns to 256 bytes, as TensorRT requires)."""

    def __init__(self, cudart: Any, nbytes: int) -> None:
        self._cudart = cudart
        self.nbytes = int(nbytes)
        self.pointer = int(check(cudart, cudart.cudaMalloc(max(self.nbytes, 1)), "cudaMalloc"))

    def free(self) -> None:
        if self.pointer:
            self._cudart.cudaFree(self.pointer)  # best effort: a failing free must not mask the caller's error
            self.pointer = 0


class PinnedArray:
    """A page-locked host array: uploads from it and downloads into it are asynchronous DMA copies."""

    def __init__(self, cudart: Any, shape: tuple[int, ...], dtype: Any) -> None:
        self._cudart = cudart
        self.dtype = np.dtype(dtype)
        self.shape = tuple(int(s) for s in shape)
        self.nbytes = int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize
        self.pointer = int(check(cudart, cudart.cudaMallocHost(max(self.nbytes, 1)), "cudaMallocHost"))
        raw = (ctypes.c_uint8 * max(self.nbytes, 1)).from_address(self.pointer)
        self.array = np.frombuffer(raw, dtype=np.uint8, count=self.nbytes).view(self.dtype).reshape(self.shape)

    def free(self) -> None:
        if self.pointer:
            self.array = None  # type: ignore[assignment]  # no view may outlive the memory
            self._cudart.cudaFreeHost(self.pointer)
            self.pointer = 0


class Stream:
    """A CUDA stream with the copies, events and graph launches an engine needs."""

    def __init__(self, cudart: Any) -> None:
        self._cudart = cudart
        self.handle = check(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")

    def upload(self, device: DeviceBuffer, host: PinnedArray) -> None:
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        check(self._cudart, self._cudart.cudaMemcpyAsync(device.pointer, host.pointer, host.nbytes, kind, self.handle), "copy to device")

    def download(self, host: PinnedArray, device: DeviceBuffer, nbytes: int | None = None) -> None:
        kind = self._cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        size = host.nbytes if nbytes is None else int(nbytes)
        check(self._cudart, self._cudart.cudaMemcpyAsync(host.pointer, device.pointer, size, kind, self.handle), "copy to host")

    def synchronize(self) -> None:
        check(self._cudart, self._cudart.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def record(self) -> Any:
        """A timing event recorded on this stream now."""
        event = check(self._cudart, self._cudart.cudaEventCreate(), "cudaEventCreate")
        check(self._cudart, self._cudart.cudaEventRecord(event, self.handle), "cudaEventRecord")
        return event

    def elapsed_seconds(self, start: Any, end: Any) -> float:
        """Device time between two recorded events (call after synchronising); frees both."""
        milliseconds = check(self._cudart, self._cudart.cudaEventElapsedTime(start, end), "cudaEventElapsedTime")
        self._cudart.cudaEventDestroy(start)
        self._cudart.cudaEventDestroy(end)
        return float(milliseconds) / 1e3

    def capture(self, work: Any) -> "Graph":
        """Record what ``work()`` enqueues on this stream into a CUDA graph (nothing runs while capturing)."""
        cudart = self._cudart
        mode = cudart.cudaStreamCaptureMode.cudaStreamCaptureModeGlobal
        check(cudart, cudart.cudaStreamBeginCapture(self.handle, mode), "cudaStreamBeginCapture")
        try:
            work()
        finally:
            graph = check(cudart, cudart.cudaStreamEndCapture(self.handle), "cudaStreamEndCapture")
        executable = check(cudart, cudart.cudaGraphInstantiate(graph, 0), "cudaGraphInstantiate")
        return Graph(cudart, graph, executable)

    def destroy(self) -> None:
        if self.handle is not None:
            self._cudart.cudaStreamDestroy(self.handle)
            self.handle = None


class Graph:
    """An instantiated CUDA graph: one launch replays everything captured."""

    def __init__(self, cudart: Any, graph: Any, executable: Any) -> None:
        self._cudart, self._graph, self._executable = cudart, graph, executable

    def launch(self, stream: Stream) -> None:
        check(self._cudart, self._cudart.cudaGraphLaunch(self._executable, stream.handle), "cudaGraphLaunch")

    def destroy(self) -> None:
        if self._executable is not None:
            self._cudart.cudaGraphExecDestroy(self._executable)
            self._cudart.cudaGraphDestroy(self._graph)
            self._executable = self._graph = None
