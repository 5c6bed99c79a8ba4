"""Running TensorRT plans (10.x and 11.x) built by ``kapao-edge build`` (kapao_edge.build.tensorrt).

The plan stays a plain serialized engine, so trtexec, DeepStream and C++ loaders read it as it is; our
metadata travels in a JSON sidecar ``<plan>.json``. The runner takes the same I/O as the file it was
built from (float or uint8 input; every row, or K candidates + their count), copies through pinned
host buffers, and for a fixed input shape replays ``execute_async_v3`` from a CUDA graph (NVIDIA's
documented pattern: one plain run to settle the context's state for the shape, then capture).

Not run in this project's CI or development machines (TensorRT is not installable there): written to
the documented API and tested wherever TensorRT imports (tests/engines/test_tensorrt_backend.py).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kapao_edge.engines.base import Engine, EngineMetadata, EngineOutput
from kapao_edge.engines.cuda_buffers import DeviceBuffer, Graph, PinnedArray, Stream, device_count, import_cudart
from kapao_edge.errors import EngineError, InputError

NEEDS_TENSORRT = (
    "the tensorrt backend needs TensorRT 10 or newer and a CUDA GPU: on Jetson use the TensorRT that "
    "JetPack installs (python3-libnvinfer), on a desktop the pip package tensorrt"
)
PLAN_SUFFIXES = (".engine", ".plan")

Shape = tuple[int, int, int, int]


@dataclass(frozen=True)
class Profile:
    """One optimisation profile for the image input (BxCxHxW): every run must fall within min..max per axis."""

    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))

    @property
    def fixed(self) -> bool:
        return self.min == self.max

    def describe(self) -> str:
        return f"min {format_shape(self.min)}, opt {format_shape(self.opt)}, max {format_shape(self.max)}"

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        return cls(*(tuple(int(v) for v in data[key]) for key in ("min", "opt", "max")))  # type: ignore[arg-type]


def format_shape(shape: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(v) for v in shape)


def sidecar_path(plan_path: str | Path) -> Path:
    return Path(f"{plan_path}.json")


def read_sidecar(plan_path: str | Path) -> tuple[EngineMetadata, Profile]:
    from kapao_edge.export.metadata import parse_metadata

    target = sidecar_path(plan_path)
    if not target.is_file():
        raise EngineError(
            f"TensorRT plan {plan_path} has no metadata sidecar: expected {target} "
            "(written by `kapao-edge build` beside the plan)"
        )
    metadata = parse_metadata(target.read_text(encoding="utf-8"), source=str(target))
    block = metadata.extra.get("tensorrt")
    try:
        profile = Profile.from_dict(block["profile"])
    except (TypeError, KeyError, ValueError):
        raise EngineError(f"{target}: the 'tensorrt' block lacks its optimisation profile (min/opt/max)") from None
    return metadata, profile


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise EngineError(NEEDS_TENSORRT) from None
    if tensorrt_major(trt) < 10:
        raise EngineError(f"{NEEDS_TENSORRT}; found TensorRT {trt.__version__}")
    return trt


def tensorrt_major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def make_logger(trt: Any, *, verbose: bool) -> Any:
    """A TensorRT logger that prints warnings (everything when verbose) and keeps errors for our message."""
    severity = trt.ILogger.Severity
    threshold = int(severity.VERBOSE if verbose else severity.WARNING)
    error_levels = {int(severity.INTERNAL_ERROR), int(severity.ERROR)}

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, level: Any, message: str) -> None:
            if int(level) in error_levels:
                self.errors.append(str(message))
            if int(level) <= threshold:
                print(f"[TensorRT] {message}", file=sys.stderr)

    return _Logger()


@dataclass
class _Bound:
    """Buffers bound for one input shape, and the graph replaying the plan on them (fixed shapes)."""

    host_input: PinnedArray
    device_input: DeviceBuffer
    host_outputs: list[PinnedArray]
    device_outputs: list[DeviceBuffer]
    graph: Graph | None = None


class TensorRTEngine(Engine):
    """One execution context and stream; buffers per input shape, freed by ``close``."""

    backend = "tensorrt"

    def __init__(self, plan: bytes, metadata: EngineMetadata, profile: Profile, *, path: Path, trt: Any, cudart: Any,
                 cuda_graph: bool = True) -> None:
        super().__init__(metadata)
        self.path, self.profile = path, profile
        self._trt, self._cudart = trt, cudart
        self.use_cuda_graph = cuda_graph
        self._logger = make_logger(trt, verbose=False)  # TensorRT keeps a pointer: keep it alive
        self._runtime = self._engine = self._context = None
        self._stream: Stream | None = None
        self._bound: dict[tuple[int, ...], _Bound] = {}
        try:
            self._open(plan)
        except BaseException:
            self.close()
            raise

    @property
    def device(self) -> str:
        return "cuda"

    def _open(self, plan: bytes) -> None:
        trt = self._trt
        if device_count(self._cudart) < 1:
            raise EngineError(f"{NEEDS_TENSORRT}: no CUDA device found")
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(plan)
        if self._engine is None:
            built_with = self.metadata.extra.get("tensorrt", {}).get("version", "an unknown version")
            raise EngineError(
                f"TensorRT {trt.__version__} cannot load {self.path} (built with TensorRT {built_with}); "
                "plans are tied to the TensorRT version and GPU that built them: rebuild it here"
            )
        names = [self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)]
        inputs = [n for n in names if self._engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        wanted = 2 if self.metadata.compact else 1
        if len(inputs) != 1 or len(outputs) != wanted:
            raise EngineError(
                f"{self.path}: expected one input and {wanted} output tensor(s) ({self.metadata.describe_io()}), "
                f"got {inputs} -> {outputs}"
            )
        self.input_name = inputs[0]
        # predictions first, then num_candidates: by name, not by the plan's order
        self.output_names = sorted(outputs, key=lambda n: n != "predictions")
        columns = tuple(self._engine.get_tensor_shape(self.output_names[0]))[-1]
        if columns >= 0 and columns != 3 * self.metadata.num_keypoints + 6:
            raise EngineError(f"{self.path}: the plan outputs {columns} columns but its sidecar says K={self.metadata.num_keypoints}")
        self._input_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self.input_name)))
        self._output_dtypes = [np.dtype(trt.nptype(self._engine.get_tensor_dtype(n))) for n in self.output_names]
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"TensorRT could not create an execution context for {self.path} (out of device memory?)")
        self._stream = Stream(self._cudart)

    def validate_input(self, images: Any) -> np.ndarray:
        images = super().validate_input(images)
        logical = images.shape if self.input_format == "float" else (images.shape[0], 3, *images.shape[1:3])  # BxCxHxW
        if not self.profile.contains(logical):
            raise InputError(
                f"this plan's optimisation profile takes {self.profile.describe()}, got {format_shape(logical)}; "
                "rebuild with wider --min-shape/--max-shape"
            )
        return images

    def _bind(self, shape: tuple[int, ...]) -> _Bound:
        """Pinned and device buffers for one input shape, bound to the context; captured when the shape is fixed."""
        if shape in self._bound:
            bound = self._bound[shape]
            self._set_addresses(shape, bound)
            return bound
        context = self._context
        if not context.set_input_shape(self.input_name, shape):
            raise InputError(f"TensorRT refused input shape {format_shape(shape)} for {self.path}")
        out_shapes = [tuple(context.get_tensor_shape(n)) for n in self.output_names]  # (B, R, No) [, (B,)]
        if any(size < 0 for s in out_shapes for size in s):
            raise EngineError(f"{self.path}: output shapes {out_shapes} are unresolved after setting the input shape")
        host_input = PinnedArray(self._cudart, shape, self._input_dtype)
        host_outputs = [PinnedArray(self._cudart, s, d) for s, d in zip(out_shapes, self._output_dtypes)]
        bound = _Bound(
            host_input=host_input,
            device_input=DeviceBuffer(self._cudart, host_input.nbytes),
            host_outputs=host_outputs,
            device_outputs=[DeviceBuffer(self._cudart, h.nbytes) for h in host_outputs],
        )
        self._bound[shape] = bound
        self._set_addresses(shape, bound)
        if self.use_cuda_graph and self.profile.fixed:
            self._enqueue()  # one plain run settles the context for this shape, then capture
            self._stream.synchronize()
            bound.graph = self._stream.capture(self._enqueue)
        return bound

    def _set_addresses(self, shape: tuple[int, ...], bound: _Bound) -> None:
        context = self._context
        ok = context.set_input_shape(self.input_name, shape) and context.set_tensor_address(
            self.input_name, bound.device_input.pointer
        )
        for name, buffer in zip(self.output_names, bound.device_outputs):
            ok = ok and context.set_tensor_address(name, buffer.pointer)
        if not ok:
            raise EngineError(f"TensorRT refused the device buffers for {self.path}")

    def _enqueue(self) -> None:
        if not self._context.execute_async_v3(int(self._stream.handle)):
            raise EngineError(f"TensorRT execution failed for {self.path}: {' | '.join(self._logger.errors[-3:])}")

    def _run(self, images: np.ndarray, *, timed: bool) -> EngineOutput:
        if self._context is None:
            raise EngineError("this engine is closed")
        stream = self._stream
        bound = self._bind(tuple(int(s) for s in images.shape))
        np.copyto(bound.host_input.array, images, casting="same_kind")
        events = [stream.record()] if timed else []
        stream.upload(bound.device_input, bound.host_input)
        if timed:
            events.append(stream.record())
        if bound.graph is not None:
            bound.graph.launch(stream)
        else:
            self._enqueue()
        if timed:
            events.append(stream.record())
        for host, device in zip(bound.host_outputs, bound.device_outputs):
            stream.download(host, device)
        if timed:
            events.append(stream.record())
        stream.synchronize()
        stages: dict[str, float] = {}
        if timed:  # CUDA events on the engine's stream
            for name, (start, end) in zip(("h2d", "infer", "d2h"), zip(events, events[1:])):
                stages[name] = stream.elapsed_seconds(start, end)
        predictions = bound.host_outputs[0].array.astype(np.float32, copy=True)  # (B, R, No)
        counts = bound.host_outputs[1].array.astype(np.int64, copy=True) if len(bound.host_outputs) > 1 else None  # (B,)
        return EngineOutput(predictions, counts, stages)

    def close(self) -> None:
        for bound in self._bound.values():
            if bound.graph is not None:
                bound.graph.destroy()
            for buffer in (bound.host_input, bound.device_input, *bound.host_outputs, *bound.device_outputs):
                buffer.free()  # best effort: a failing free must not mask the caller's error
        self._bound = {}
        if self._stream is not None:
            self._stream.destroy()
            self._stream = None
        self._context = None  # context before engine before runtime: each frees its device memory
        self._engine = None
        self._runtime = None


def load(path: str | Path, *, cuda_graph: bool = True) -> TensorRTEngine:
    """Open a plan built by ``kapao-edge build``; its sidecar supplies the metadata and the profile.

    ``cuda_graph``: replay fixed-shape plans from a CUDA graph (dynamic-shape plans always run plainly).
    """
    trt = import_tensorrt()
    cudart = import_cudart()
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"TensorRT plan not found: {path}")
    metadata, profile = read_sidecar(path)
    return TensorRTEngine(path.read_bytes(), metadata, profile, path=path, trt=trt, cudart=cudart, cuda_graph=cuda_graph)
