"""Time one engine through ``PosePipeline``, stage by stage, then pipelined; the same frames for every engine.

Latency: one batch at a time; pre-processing and post-processing by the wall clock, the engine's
h2d / infer / d2h by CUDA events on GPU engines (torch) or by synchronising the stream (TensorRT,
ONNX Runtime's I/O binding), by the wall clock on the CPU. Throughput: ``PosePipeline.map`` with the
three stages overlapped. Also reported: host CPU time and bytes crossing host <-> device per frame.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kapao_edge.bench.stats import current_rss_mb, peak_rss_mb, summarize
from kapao_edge.engines.base import Engine
from kapao_edge.errors import InputError

STAGE_ORDER = ("preprocess", "h2d", "infer", "d2h", "postprocess")


@dataclass(frozen=True)
class BenchSettings:
    batch: int = 1
    imgsz: tuple[int, int] = (640, 640)
    iters: int = 50
    warmup: int = 5
    postprocess_backend: str = "auto"
    frame_hw: tuple[int, int] = (480, 640)  # original frames: 4:3, letterboxed to imgsz
    seed: int = 0
    preprocess: str = "auto"  # PosePipeline's: the device letterbox where the engine can, else the host's
    pipelined: bool = True  # also measure overlapped throughput

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise InputError(f"--batch must be >= 1, got {self.batch}")
        if self.iters < 1:
            raise InputError(f"--iters must be >= 1, got {self.iters}")
        if self.warmup < 0:
            raise InputError(f"--warmup must be >= 0, got {self.warmup}")


@dataclass
class BenchResult:
    name: str
    backend: str
    precision: str
    device: str
    batch: int
    input_hw: tuple[int, int]
    iters: int
    stages: dict[str, dict[str, float]]  # stage -> p50/p90/p99/mean/min ms (per batch)
    total: dict[str, float]
    throughput: float  # images per second over the timed iterations
    peak_rss_mb: float
    rss_mb: float | None = None
    gpu_memory_mb: float | None = None
    pipelined_fps: float | None = None  # frames per second with the stages overlapped
    host_cpu_ms_per_frame: float | None = None  # process CPU time (all threads) per frame, latency loop
    bytes_h2d_per_frame: int | None = None  # GPU engines: what the host uploads per frame
    bytes_d2h_per_frame: int | None = None  # GPU engines: what comes back per frame
    preprocess: str = "host"  # host letterbox or device letterbox
    timing: str = "wall clock"
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def synthetic_frames(count: int, frame_hw: tuple[int, int], preset: str, seed: int = 0) -> list[np.ndarray]:
    """Procedural multi-person scenes (BGR uint8): post-processing sees real-looking inputs."""
    from kapao_edge.data.synth import generate_scene

    return [generate_scene(np.random.default_rng(seed + i), preset, imgsz=frame_hw).image for i in range(count)]


def engine_shape(engine: Engine, settings: BenchSettings) -> tuple[int, tuple[int, int], list[str]]:
    """Batch and input size to run: a fixed-shape engine's own, else the settings'."""
    notes = []
    batch, _, height, width = engine.metadata.input_shape
    run_batch = settings.batch
    if isinstance(batch, int) and batch != settings.batch:
        run_batch = batch
        notes.append(f"fixed batch {batch} used instead of {settings.batch}")
    run_hw = tuple(settings.imgsz)
    fixed = engine.metadata.default_hw
    if fixed is not None and tuple(fixed) != run_hw:
        run_hw = tuple(fixed)
        notes.append(f"fixed input {fixed[0]}x{fixed[1]} used instead of {settings.imgsz[0]}x{settings.imgsz[1]}")
    return run_batch, run_hw, notes  # type: ignore[return-value]


def benchmark_engine(engine: Engine, name: str, settings: BenchSettings, *, device: str = "cpu") -> BenchResult:
    from kapao_edge.data import check_input_size
    from kapao_edge.runtime.pipeline import PosePipeline

    batch, input_hw, notes = engine_shape(engine, settings)
    input_hw = check_input_size(input_hw)
    frames = synthetic_frames(batch, settings.frame_hw, engine.preset.name, settings.seed)
    pipeline = PosePipeline(
        engine, imgsz=input_hw, preprocess=settings.preprocess, postprocess_backend=settings.postprocess_backend
    )
    pipeline.preprocessor.auto = False  # the full input size, as a fixed-shape plan would take
    on_gpu = engine.device != "cpu"
    samples: dict[str, list[float]] = {stage: [] for stage in STAGE_ORDER}
    totals: list[float] = []
    cpu_seconds = 0.0
    bytes_h2d = bytes_d2h = 0
    gpu = _gpu_memory_probe(engine)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # random weights overflow a compact file's K: not news
        for iteration in range(settings.warmup + settings.iters):
            cpu0, t0 = time.process_time(), time.perf_counter()
            prepared = pipeline.preprocess(frames)
            inferred = pipeline.infer(prepared, timed=True)
            pipeline.postprocess(inferred)
            t1, cpu1 = time.perf_counter(), time.process_time()
            if iteration < settings.warmup:
                continue
            engine_stages = dict(inferred.output.stages)
            samples["preprocess"].append(prepared.seconds + engine_stages.pop("preprocess", 0.0))
            for stage, seconds in engine_stages.items():
                samples[stage].append(seconds)
            samples["postprocess"].append(t1 - t0 - prepared.seconds - inferred.seconds)
            totals.append(t1 - t0)
            cpu_seconds += cpu1 - cpu0
            bytes_h2d, bytes_d2h = prepared.bytes_to_device, inferred.bytes_to_host
        pipelined_fps = measure_pipelined_fps(pipeline, frames, settings.iters, settings.warmup) if settings.pipelined else None

    stages = {stage: summarize(values) for stage, values in samples.items() if values}
    frames_timed = batch * len(totals)
    return BenchResult(
        name=name,
        backend=engine.backend,
        precision=engine.metadata.precision,
        device=device,
        batch=batch,
        input_hw=input_hw,
        iters=settings.iters,
        stages=stages,
        total=summarize(totals),
        throughput=frames_timed / sum(totals),
        peak_rss_mb=peak_rss_mb(),
        rss_mb=current_rss_mb(),
        gpu_memory_mb=gpu(),
        pipelined_fps=pipelined_fps,
        host_cpu_ms_per_frame=1e3 * cpu_seconds / frames_timed,
        bytes_h2d_per_frame=bytes_h2d // batch if on_gpu else None,
        bytes_d2h_per_frame=bytes_d2h // batch if on_gpu else None,
        preprocess="device letterbox" if prepared.inputs is None else "host letterbox",
        timing=_timing_method(engine),
        notes=notes,
    )


def measure_pipelined_fps(pipeline: Any, frames: list[np.ndarray], iters: int, warmup: int) -> float:
    """Frames per second with pre-processing, inference and post-processing overlapped (PosePipeline.map)."""
    batch = len(frames)
    stream = [frame for _ in range(iters) for frame in frames]
    for _ in pipeline.map(frames * max(warmup, 1), batch=batch):
        pass
    start = time.perf_counter()
    count = sum(1 for _ in pipeline.map(stream, batch=batch))
    return count / (time.perf_counter() - start)


def _timing_method(engine: Engine) -> str:
    if engine.device == "cpu":
        return "wall clock"
    return "CUDA events" if engine.backend == "torch" else "stream synchronisation"


def _gpu_memory_probe(engine: Engine):
    """A callable giving peak device memory in MB for a CUDA torch engine, else None."""
    model_device = engine.device
    if engine.backend != "torch" or not model_device.startswith("cuda"):
        return lambda: None
    import torch

    torch.cuda.reset_peak_memory_stats(model_device)
    return lambda: torch.cuda.max_memory_allocated(model_device) / 1024**2
