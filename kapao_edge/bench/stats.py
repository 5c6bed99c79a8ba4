"""Latency summaries: percentiles in milliseconds from per-iteration seconds."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np

PERCENTILES = (50, 90, 99)


def interleaved_ms(runs: Mapping[str, Callable[[], object]], *, rounds: int, warmup: int,
                   idle_s: float = 0.0) -> dict[str, list[float]]:
    """Milliseconds per call of every run, round-robin: each variant sees the same machine state over
    time, so ratios between them hold even when the load drifts (benchmarks compare in one process).

    ``idle_s`` sleeps before every timed call: ONNX Runtime's worker threads spin for a while after a
    run, and without a pause they would steal the CPU from the next variant's run.
    """
    for run in runs.values():
        for _ in range(warmup):
            run()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            if idle_s:
                time.sleep(idle_s)
            start = time.perf_counter()
            run()
            samples[name].append((time.perf_counter() - start) * 1e3)
    return samples


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    """p50 / p90 / p99 / mean / min in ms; an empty sequence gives zeros (a stage that never ran)."""
    values = np.asarray(seconds, dtype=np.float64) * 1e3  # (iters,) ms
    if values.size == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "mean": 0.0, "min": 0.0}
    summary = {f"p{q}": float(np.percentile(values, q)) for q in PERCENTILES}
    summary["mean"] = float(values.mean())
    summary["min"] = float(values.min())
    return summary


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (cumulative over every engine it has run)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024**2 if sys.platform == "darwin" else peak / 1024  # macOS bytes, Linux KiB


def current_rss_mb() -> float | None:
    """Resident memory now, when psutil is installed (it is optional)."""
    try:
        import psutil
    except ImportError:
        return None
    return psutil.Process().memory_info().rss / 1024**2
