"""Time one engine stage by stage: letterbox + to-tensor, inference (H2D / infer / D2H on a GPU),
post-processing; on the same frames for every engine, after a warm-up."""

from __future__ import annotations

import time
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
    from kapao_edge.data import check_input_size, prepare
    from kapao_edge.postprocess import PostprocessConfig, postprocess

    batch, input_hw, notes = engine_shape(engine, settings)
    input_hw = check_input_size(input_hw)
    frames = synthetic_frames(batch, settings.frame_hw, engine.preset.name, settings.seed)
    config = PostprocessConfig.named("demo", engine.metadata.postprocess)
    staged = getattr(engine, "infer_stages", None)
    samples: dict[str, list[float]] = {stage: [] for stage in STAGE_ORDER}
    totals: list[float] = []
    gpu = _gpu_memory_probe(engine)

    for iteration in range(settings.warmup + settings.iters):
        t0 = time.perf_counter()
        prepared = [prepare(frame, input_hw, auto=False) for frame in frames]
        images = np.stack([chw for chw, _ in prepared])  # (B, 3, H, W)
        t1 = time.perf_counter()
        if staged is not None:
            predictions, infer_stages = staged(images)  # (B, N, No)
        else:
            predictions = engine(images)
            infer_stages = {"infer": time.perf_counter() - t1}
        t2 = time.perf_counter()
        postprocess(
            predictions, input_hw, [info.original_hw for _, info in prepared], config,
            backend=settings.postprocess_backend,
        )
        t3 = time.perf_counter()
        if iteration < settings.warmup:
            continue
        samples["preprocess"].append(t1 - t0)
        for stage, seconds in infer_stages.items():
            samples[stage].append(seconds)
        samples["postprocess"].append(t3 - t2)
        totals.append(t3 - t0)

    stages = {stage: summarize(values) for stage, values in samples.items() if values}
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
        throughput=batch * len(totals) / sum(totals),
        peak_rss_mb=peak_rss_mb(),
        rss_mb=current_rss_mb(),
        gpu_memory_mb=gpu(),
        notes=notes,
    )


def _gpu_memory_probe(engine: Engine):
    """A callable giving peak device memory in MB for a CUDA torch engine, else None."""
    model_device = getattr(engine, "device", None)
    if engine.backend != "torch" or getattr(model_device, "type", None) != "cuda":
        return lambda: None
    import torch

    torch.cuda.reset_peak_memory_stats(model_device)
    return lambda: torch.cuda.max_memory_allocated(model_device) / 1024**2
