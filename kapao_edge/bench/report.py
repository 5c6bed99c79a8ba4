"""Benchmark output: a side-by-side terminal table, machine-readable JSON, an optional PNG plot."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

from kapao_edge.bench.runner import STAGE_ORDER, BenchResult, BenchSettings
from kapao_edge.errors import InputError


def ratio_vs_first(results: list[BenchResult]) -> list[float]:
    """Speed-up of each engine over the first one (median total latency per image)."""
    first = results[0].total["p50"] / results[0].batch
    return [first / (r.total["p50"] / r.batch) if r.total["p50"] else float("nan") for r in results]


def render_table(results: list[BenchResult]) -> Any:
    from rich.table import Table

    table = Table(title="kapao-edge bench (ms per batch: p50 / p90 / p99)")
    table.add_column("engine", overflow="fold")
    table.add_column("batch x size")
    for stage in STAGE_ORDER:
        if any(stage in r.stages for r in results):
            table.add_column(stage, justify="right")
    table.add_column("total", justify="right")
    table.add_column("img/s", justify="right")
    table.add_column("vs first", justify="right")
    table.add_column("peak RSS MB", justify="right")
    for result, ratio in zip(results, ratio_vs_first(results)):
        row = [f"{result.name}\n{result.backend} {result.precision} {result.device}"]
        row.append(f"{result.batch} x {result.input_hw[0]}x{result.input_hw[1]}")
        for stage in STAGE_ORDER:
            if any(stage in r.stages for r in results):
                row.append(_triple(result.stages.get(stage)))
        row += [_triple(result.total), f"{result.throughput:.1f}", f"{ratio:.2f}x", f"{result.peak_rss_mb:.0f}"]
        table.add_row(*row)
    return table


def _triple(summary: dict[str, float] | None) -> str:
    if not summary:
        return "-"
    return f"{summary['p50']:.2f} / {summary['p90']:.2f} / {summary['p99']:.2f}"


def to_json(results: list[BenchResult], settings: BenchSettings) -> str:
    payload = {
        "settings": {**settings.__dict__, "imgsz": list(settings.imgsz), "frame_hw": list(settings.frame_hw)},
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "python": platform.python_version()},
        "results": [
            {**r.to_dict(), "ratio_vs_first": ratio} for r, ratio in zip(results, ratio_vs_first(results))
        ],
    }
    return json.dumps(payload, indent=2)


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise InputError("--plot needs matplotlib: pip install 'kapao-edge[plot]'") from None


def write_plot(results: list[BenchResult], target: str | Path) -> None:
    """Stacked horizontal bars of the median stage latencies per image, one bar per engine."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kapao_edge.utils.io import atomic_path

    labels = [r.name for r in results]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.6 * len(results)))
    left = [0.0] * len(results)
    for stage in STAGE_ORDER:
        widths = [r.stages.get(stage, {}).get("p50", 0.0) / r.batch for r in results]
        if any(widths):
            ax.barh(labels, widths, left=left, label=stage)
            left = [a + b for a, b in zip(left, widths)]
    ax.set_xlabel("median ms per image")
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
