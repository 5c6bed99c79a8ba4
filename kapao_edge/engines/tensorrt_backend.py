"""TensorRT backend (10.x and 11.x): build a plan from a kapao-edge ONNX, run it through cuda-python buffers.

The plan stays a plain serialized engine, so trtexec, DeepStream and C++ loaders read it as it is; our
metadata travels in a JSON sidecar ``<plan>.json``. Option checks, profile derivation and sidecars are
plain functions that never import TensorRT, so bad input fails fast and is tested where TensorRT is absent.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kapao_edge.engines.base import MAX_STRIDE, Engine, EngineMetadata, EngineOutput
from kapao_edge.errors import EngineError, InputError
from kapao_edge.utils.io import sha256_file, write_bytes_atomic, write_text_atomic

NEEDS_TENSORRT = "the tensorrt backend needs TensorRT 10 or newer (pip package tensorrt) and a CUDA GPU"
# Profile ranges for dynamic axes when the user gives none: (min, opt, max).
DEFAULT_BATCH_RANGE = (1, 1, 4)
DEFAULT_SIDE_RANGE = (128, 640, 1280)  # 128: the smallest side the exporter traces dynamic H/W at
# Graph content that fixes precision inside the ONNX; TensorRT must then build it strongly typed.
_EXPLICIT_PRECISION_OPS = {"QuantizeLinear", "DequantizeLinear"}
PLAN_SUFFIXES = (".engine", ".plan")

Shape = tuple[int, int, int, int]


@dataclass(frozen=True)
class Profile:
    """One optimisation profile for the image input: every run must fall within min..max per axis."""

    min: Shape
    opt: Shape
    max: Shape

    def contains(self, shape: tuple[int, ...]) -> bool:
        return len(shape) == 4 and all(lo <= s <= hi for lo, s, hi in zip(self.min, shape, self.max))

    def describe(self) -> str:
        return f"min {format_shape(self.min)}, opt {format_shape(self.opt)}, max {format_shape(self.max)}"

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Profile":
        return cls(*(tuple(int(v) for v in data[key]) for key in ("min", "opt", "max")))  # type: ignore[arg-type]


@dataclass
class OnnxSummary:
    """What the build needs to know about an ONNX before TensorRT sees it."""

    path: Path
    metadata: dict[str, Any]  # the kapao_edge JSON entry, as written
    input_name: str
    explicit_precision: bool  # FP16 casts/initialisers or Q/DQ nodes: build strongly typed

    @property
    def precision(self) -> str:
        return str(self.metadata.get("precision", "fp32"))

    @property
    def input_shape(self) -> list[int | str]:
        return list(self.metadata["input_shape"])


@dataclass
class BuildReport:
    plan_path: str
    sidecar_path: str
    tensorrt_version: str
    profile: dict[str, list[int]]
    flags: list[str]
    plan_size: int
    seconds: float
    timing_cache: str | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------- pure Python: no TensorRT needed


def format_shape(shape: tuple[int, ...] | list[int]) -> str:
    return "x".join(str(v) for v in shape)


def parse_shape(text: str, *, option: str = "shape") -> Shape:
    """``1x3x640x640`` -> (1, 3, 640, 640), as trtexec writes shapes."""
    parts = text.strip().lower().split("x")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise InputError(f"{option} must look like 1x3x640x640 (BxCxHxW), got {text!r}")
    return values  # type: ignore[return-value]


def derive_profile(
    input_shape: list[int | str],
    *,
    min_shape: Shape | None = None,
    opt_shape: Shape | None = None,
    max_shape: Shape | None = None,
) -> Profile:
    """The profile to build: the user's shapes, checked against the ONNX, or defaults for its dynamic axes.

    ``opt_shape`` alone gives a fixed-shape profile (trtexec's ``--shapes``); otherwise all three or none.
    """
    given = (min_shape, opt_shape, max_shape)
    if all(shape is None for shape in given):
        ranges = [_default_range(size, axis) for axis, size in enumerate(input_shape)]
        profile = Profile(*(tuple(r[i] for r in ranges) for i in range(3)))  # type: ignore[arg-type]
    elif opt_shape is not None and min_shape is None and max_shape is None:
        profile = Profile(opt_shape, opt_shape, opt_shape)
    elif all(shape is not None for shape in given):
        profile = Profile(min_shape, opt_shape, max_shape)  # type: ignore[arg-type]
    else:
        raise InputError(
            "give --min-shape, --opt-shape and --max-shape together, or --opt-shape alone (a fixed-shape plan)"
        )
    for name, shape in (("opt", profile.opt), ("min", profile.min), ("max", profile.max)):
        _check_profile_shape(shape, name, input_shape)
    if not all(lo <= mid <= hi for lo, mid, hi in zip(profile.min, profile.opt, profile.max)):
        raise InputError(f"profile shapes must satisfy min <= opt <= max on every axis, got {profile.describe()}")
    return profile


def _default_range(size: int | str, axis: int) -> tuple[int, int, int]:
    if isinstance(size, int):
        return (size, size, size)
    return DEFAULT_BATCH_RANGE if axis == 0 else DEFAULT_SIDE_RANGE


def _check_profile_shape(shape: Shape, name: str, input_shape: list[int | str]) -> None:
    batch, channels, height, width = shape
    label = f"--{name}-shape {format_shape(shape)}"
    if channels != 3:
        raise InputError(f"{label}: the image input has 3 channels (BxCxHxW), got C={channels}")
    if batch < 1:
        raise InputError(f"{label}: batch must be >= 1")
    if height < MAX_STRIDE or width < MAX_STRIDE or height % MAX_STRIDE or width % MAX_STRIDE:
        raise InputError(f"{label}: height and width must be positive multiples of {MAX_STRIDE}")
    fixed_batch = input_shape[0]
    if isinstance(fixed_batch, int) and batch != fixed_batch:
        raise InputError(f"{label}: this ONNX has a fixed batch of {fixed_batch}; export with --dynamic batch to change it")
    fixed_hw = input_shape[2:]
    for size, fixed in zip((height, width), fixed_hw):
        if isinstance(fixed, int) and size != fixed:
            raise InputError(
                f"{label}: this ONNX takes fixed {format_shape(fixed_hw)} inputs; export with --dynamic batch+hw to change it"
            )


def plan_input_shape(onnx_input_shape: list[int | str], profile: Profile) -> list[int | str]:
    """The input shape a plan accepts: an axis the profile pins (min == max) becomes fixed."""
    return [lo if lo == hi else size for size, lo, hi in zip(onnx_input_shape, profile.min, profile.max)]


def summarize_onnx(onnx_path: str | Path) -> OnnxSummary:
    """Read metadata, input name and precision markers without loading external weights."""
    import onnx

    from kapao_edge.export.metadata import require_onnx_metadata

    path = Path(onnx_path)
    if not path.is_file():
        raise InputError(f"ONNX file not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: the file is not a protobuf ModelProto
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path} is not an ONNX model: {first}") from None
    if not model.graph.node:
        raise InputError(f"{path} is not an ONNX model: it has no graph")
    metadata = require_onnx_metadata(model, path)
    if len(metadata["input_shape"]) != 4:
        raise InputError(f"{path}: its metadata input_shape {metadata['input_shape']} is not (B, 3, H, W)")
    initializers = {init.name for init in model.graph.initializer}
    inputs = [value.name for value in model.graph.input if value.name not in initializers]
    if len(inputs) != 1:
        raise InputError(f"{path}: expected one image input, found {len(inputs)} ({', '.join(inputs)})")
    return OnnxSummary(path, metadata, inputs[0], _has_explicit_precision(model))


def _has_explicit_precision(model: Any) -> bool:
    from onnx import TensorProto

    reduced = {TensorProto.FLOAT16, TensorProto.BFLOAT16}
    for node in model.graph.node:
        if node.op_type in _EXPLICIT_PRECISION_OPS:
            return True
        if node.op_type == "Cast" and any(a.name == "to" and a.i in reduced for a in node.attribute):
            return True
    return any(init.data_type in reduced for init in model.graph.initializer)


def check_build_options(summary: OnnxSummary, *, fp16: bool, workspace_mb: int | None) -> None:
    if workspace_mb is not None and workspace_mb < 1:
        raise InputError(f"--workspace-mb must be >= 1, got {workspace_mb}")
    if fp16 and (summary.precision != "fp32" or summary.explicit_precision):
        raise InputError(
            f"--fp16 needs an FP32 ONNX; {summary.path} is already {summary.precision} "
            "(its precision is in the graph): build it without --fp16"
        )


def sidecar_path(plan_path: str | Path) -> Path:
    return Path(f"{plan_path}.json")


def write_sidecar(plan_path: str | Path, onnx_metadata: dict[str, Any], profile: Profile, tensorrt_info: dict[str, Any]) -> Path:
    """The ONNX's kapao_edge JSON, with the plan's input shape and a ``tensorrt`` block beside it."""
    data = dict(onnx_metadata)
    data["input_shape"] = plan_input_shape(list(onnx_metadata["input_shape"]), profile)
    data["tensorrt"] = {**tensorrt_info, "profile": profile.to_dict(), "onnx_input_shape": list(onnx_metadata["input_shape"])}
    target = sidecar_path(plan_path)
    write_text_atomic(target, json.dumps(data, indent=2, sort_keys=True) + "\n")
    return target


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


# ---------------------------------------------------------------- TensorRT and CUDA


def _import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError:
        raise EngineError(NEEDS_TENSORRT) from None
    if _major(trt) < 10:
        raise EngineError(f"{NEEDS_TENSORRT}; found TensorRT {trt.__version__}")
    return trt


def _import_cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart  # cuda-python before 12.6 kept the same API here
        except ImportError:
            raise EngineError(f"{NEEDS_TENSORRT}; device buffers also need cuda-python (pip package cuda-python)") from None
    return cudart


def _major(trt: Any) -> int:
    return int(str(trt.__version__).split(".")[0])


def _cuda(cudart: Any, result: tuple, what: str) -> Any:
    """Unwrap a cuda-python ``(err, *values)`` tuple; a non-success code becomes an EngineError."""
    err, *values = result
    if err != cudart.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        raise EngineError(f"CUDA {what} failed: {name}")
    return values[0] if len(values) == 1 else tuple(values)


def _make_logger(trt: Any, *, verbose: bool) -> Any:
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


def build_plan(
    onnx_path: str | Path,
    plan_path: str | Path | None = None,
    *,
    min_shape: Shape | None = None,
    opt_shape: Shape | None = None,
    max_shape: Shape | None = None,
    workspace_mb: int | None = None,
    timing_cache: str | Path | None = None,
    fp16: bool = False,
    verbose: bool = False,
) -> BuildReport:
    """ONNX -> plan + sidecar, both written atomically. Every input check runs before TensorRT is imported."""
    started = time.perf_counter()
    summary = summarize_onnx(onnx_path)
    plan_path = Path(plan_path) if plan_path is not None else summary.path.with_suffix(".engine")
    if plan_path.suffix.lower() not in PLAN_SUFFIXES:
        raise InputError(f"the plan file must end in .engine or .plan (so loaders pick TensorRT), got {plan_path}")
    profile = derive_profile(summary.input_shape, min_shape=min_shape, opt_shape=opt_shape, max_shape=max_shape)
    check_build_options(summary, fp16=fp16, workspace_mb=workspace_mb)

    trt = _import_tensorrt()
    if fp16 and _major(trt) >= 11:
        raise InputError(
            f"--fp16 is a TensorRT 10 option; TensorRT {trt.__version__} takes precision from the ONNX: "
            "run `kapao-edge quantize --precision fp16` and build that file"
        )
    logger = _make_logger(trt, verbose=verbose)
    builder = trt.Builder(logger)
    flags: list[str] = []
    network_flags = 0
    if summary.explicit_precision:
        network_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        flags.append("STRONGLY_TYPED")
    network = builder.create_network(network_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(summary.path)):
        messages = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger.errors
        raise EngineError(f"TensorRT cannot parse {summary.path}: {' | '.join(messages) or 'no message'}")
    if network.num_inputs != 1 or network.get_input(0).name != summary.input_name:
        raise EngineError(f"{summary.path}: TensorRT sees inputs other than the single image input {summary.input_name!r}")

    config = builder.create_builder_config()
    if workspace_mb is not None:
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb * 1024**2)
    if fp16:
        config.set_flag(trt.BuilderFlag.FP16)
        flags.append("FP16")
    if any(size < 0 for size in network.get_input(0).shape):  # static networks take no profile
        trt_profile = builder.create_optimization_profile()
        trt_profile.set_shape(summary.input_name, profile.min, profile.opt, profile.max)
        config.add_optimization_profile(trt_profile)
    if timing_cache is not None:
        cached = Path(timing_cache).read_bytes() if Path(timing_cache).is_file() else b""
        try:
            cache = config.create_timing_cache(cached)
            accepted = cache is not None and config.set_timing_cache(cache, ignore_mismatch=False)
        except Exception:  # TensorRT raises its own RuntimeError types on a corrupt cache
            accepted = False
        if not accepted:
            raise EngineError(f"TensorRT cannot use the timing cache {timing_cache}; delete it to start a new one")

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        detail = " | ".join(logger.errors[-3:]) or "see the log above; --verbose shows more"
        raise EngineError(f"TensorRT could not build a plan from {summary.path}: {detail}")
    write_bytes_atomic(plan_path, bytes(serialized))
    if timing_cache is not None:
        write_bytes_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    info = {
        "version": str(trt.__version__),
        "flags": flags,
        "workspace_mb": workspace_mb,
        "source_onnx": summary.path.name,
        "source_onnx_sha256": sha256_file(summary.path),
    }
    side = write_sidecar(plan_path, summary.metadata, profile, info)
    return BuildReport(
        plan_path=str(plan_path),
        sidecar_path=str(side),
        tensorrt_version=str(trt.__version__),
        profile=profile.to_dict(),
        flags=flags,
        plan_size=plan_path.stat().st_size,
        seconds=time.perf_counter() - started,
        timing_cache=str(timing_cache) if timing_cache is not None else None,
    )


class TensorRTEngine(Engine):
    """One execution context, one stream, device buffers grown on demand and freed by ``close``."""

    backend = "tensorrt"

    def __init__(self, plan: bytes, metadata: EngineMetadata, profile: Profile, *, path: Path, trt: Any, cudart: Any) -> None:
        super().__init__(metadata)
        self.path, self.profile = path, profile
        self._trt, self._cudart = trt, cudart
        self._logger = _make_logger(trt, verbose=False)  # TensorRT keeps a pointer: keep it alive
        self._runtime = self._engine = self._context = self._stream = None
        self._buffers: dict[str, tuple[int, int]] = {}  # tensor name -> (device pointer, bytes)
        try:
            self._open(plan)
        except BaseException:
            self.close()
            raise

    def _open(self, plan: bytes) -> None:
        trt, cudart = self._trt, self._cudart
        try:
            devices = _cuda(cudart, cudart.cudaGetDeviceCount(), "cudaGetDeviceCount")
        except EngineError as exc:
            raise EngineError(f"{NEEDS_TENSORRT}: {exc}") from None
        if devices < 1:
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
        if len(inputs) != 1 or len(outputs) != 1:
            raise EngineError(f"{self.path}: expected one input and one output tensor, got {inputs} -> {outputs}")
        self.input_name, self.output_name = inputs[0], outputs[0]
        columns = tuple(self._engine.get_tensor_shape(self.output_name))[-1]
        if columns >= 0 and columns != 3 * self.metadata.num_keypoints + 6:
            raise EngineError(f"{self.path}: the plan outputs {columns} columns but its sidecar says K={self.metadata.num_keypoints}")
        self._input_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self.input_name)))
        self._output_dtype = np.dtype(trt.nptype(self._engine.get_tensor_dtype(self.output_name)))
        self._context = self._engine.create_execution_context()
        if self._context is None:
            raise EngineError(f"TensorRT could not create an execution context for {self.path} (out of device memory?)")
        self._stream = _cuda(cudart, cudart.cudaStreamCreate(), "cudaStreamCreate")

    def validate_input(self, images: Any) -> np.ndarray:
        images = super().validate_input(images)
        if not self.profile.contains(images.shape):
            raise InputError(
                f"this plan's optimisation profile takes {self.profile.describe()}, got {format_shape(images.shape)}; "
                "rebuild with wider --min-shape/--max-shape"
            )
        return images

    def _device_buffer(self, name: str, nbytes: int) -> int:
        """A device pointer with room for ``nbytes``; cudaMalloc aligns to 256 bytes as TensorRT needs."""
        pointer, capacity = self._buffers.get(name, (0, 0))
        if capacity < nbytes:
            if pointer:
                _cuda(self._cudart, self._cudart.cudaFree(pointer), "cudaFree")
                del self._buffers[name]
            pointer = int(_cuda(self._cudart, self._cudart.cudaMalloc(nbytes), "cudaMalloc"))
            self._buffers[name] = (pointer, nbytes)
        return pointer

    def _run(self, images: np.ndarray, *, timed: bool) -> EngineOutput:
        if self._context is None:
            raise EngineError("this engine is closed")
        cudart, context, stream = self._cudart, self._context, self._stream
        host_in = np.ascontiguousarray(images, dtype=self._input_dtype)  # (B, 3, H, W)
        if not context.set_input_shape(self.input_name, host_in.shape):
            raise InputError(f"TensorRT refused input shape {format_shape(host_in.shape)} for {self.path}")
        out_shape = tuple(context.get_tensor_shape(self.output_name))  # (B, N, No)
        if any(size < 0 for size in out_shape):
            raise EngineError(f"{self.path}: output shape {out_shape} is unresolved after setting the input shape")
        host_out = np.empty(out_shape, dtype=self._output_dtype)  # (B, N, No)
        device_in = self._device_buffer(self.input_name, host_in.nbytes)
        device_out = self._device_buffer(self.output_name, host_out.nbytes)
        if not (context.set_tensor_address(self.input_name, device_in) and context.set_tensor_address(self.output_name, device_out)):
            raise EngineError(f"TensorRT refused the device buffers for {self.path}")
        stages: dict[str, float] = {}
        clock = [time.perf_counter()]

        def mark(stage: str) -> None:
            if timed:
                _cuda(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
                clock.append(time.perf_counter())
                stages[stage] = clock[-1] - clock[-2]

        to_device, to_host = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        _cuda(cudart, cudart.cudaMemcpyAsync(device_in, host_in.ctypes.data, host_in.nbytes, to_device, stream), "copy to device")
        mark("h2d")
        if not context.execute_async_v3(int(stream)):
            raise EngineError(f"TensorRT execution failed for {self.path}: {' | '.join(self._logger.errors[-3:])}")
        mark("infer")
        _cuda(cudart, cudart.cudaMemcpyAsync(host_out.ctypes.data, device_out, host_out.nbytes, to_host, stream), "copy to host")
        _cuda(cudart, cudart.cudaStreamSynchronize(stream), "cudaStreamSynchronize")
        if timed:
            stages["d2h"] = time.perf_counter() - clock[-1]
        return EngineOutput(host_out, None, stages)

    def close(self) -> None:
        cudart = self._cudart
        for pointer, _ in self._buffers.values():
            cudart.cudaFree(pointer)  # best effort: a failing free must not mask the caller's error
        self._buffers = {}
        if self._stream is not None:
            cudart.cudaStreamDestroy(self._stream)
            self._stream = None
        self._context = None  # context before engine before runtime: each frees its device memory
        self._engine = None
        self._runtime = None


def load(path: str | Path) -> TensorRTEngine:
    """Open a plan built by ``build_plan``; its sidecar supplies the metadata and the profile."""
    trt = _import_tensorrt()
    cudart = _import_cudart()
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"TensorRT plan not found: {path}")
    metadata, profile = read_sidecar(path)
    return TensorRTEngine(path.read_bytes(), metadata, profile, path=path, trt=trt, cudart=cudart)
