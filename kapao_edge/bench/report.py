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


WIDE_TABLE_COLUMNS = 150  # below this a row per engine folds its numbers; one column per engine instead


def render_table(results: list[BenchResult], width: int | None = None) -> Any:
    """One row per engine on a wide terminal; on a narrow one (an 80-column CI log) one column per
    engine, named #1, #2, ... with the engines listed above, so no name or number is split."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    timing = ", ".join(sorted({r.timing for r in results}))
    title = f"kapao-edge bench: p50 ms per batch (p90, p99 in --json); engine stages by {timing}"
    columns = _columns(results)
    if width is None or width >= WIDE_TABLE_COLUMNS:
        table = Table(title=title)
        for name, justify in columns:
            table.add_column(name, justify=justify, overflow="fold", min_width=6 if name == "vs 1st" else None)
        for row in _rows(results):
            table.add_row(*row)
        return table
    legend = [Text(title)]
    legend += [Text(f"#{i} {r.name}: {_describe(r)}", overflow="fold") for i, r in enumerate(results, 1)]
    table = Table()
    table.add_column("")
    for i, _ in enumerate(results, 1):
        table.add_column(f"#{i}", justify="right", no_wrap=True)
    rows = _rows(results)
    for index, (name, _) in enumerate(columns):
        if name != "engine":
            table.add_row(name, *(row[index] for row in rows))
    return Group(*legend, table)


def _describe(result: BenchResult) -> str:
    return f"{result.backend} {result.precision} {result.device}, {result.preprocess}"


def _columns(results: list[BenchResult]) -> list[tuple[str, str]]:
    columns = [("engine", "left"), ("batch x size", "left")]
    columns += [(stage, "right") for stage in STAGE_ORDER if any(stage in r.stages for r in results)]
    columns += [(name, "right") for name in ("total", "img/s", "img/s piped", "vs 1st", "CPU ms/img")]
    if any(r.bytes_d2h_per_frame is not None for r in results):
        columns.append(("KB up/down per img", "right"))
    columns.append(("RSS MB", "right"))
    return columns


def _rows(results: list[BenchResult]) -> list[list[str]]:
    rows = []
    for result, ratio in zip(results, ratio_vs_first(results)):
        row = [f"{result.name}\n{_describe(result)}"]
        row.append(f"{result.batch} x {result.input_hw[0]}x{result.input_hw[1]}")
        for stage in STAGE_ORDER:
            if any(stage in r.stages for r in results):
                row.append(_triple(result.stages.get(stage)))
        pipelined = f"{result.pipelined_fps:.1f}" if result.pipelined_fps else "-"
        row += [_triple(result.total), f"{result.throughput:.1f}", pipelined, f"{ratio:.2f}x"]
        row.append(f"{result.host_cpu_ms_per_frame:.1f}" if result.host_cpu_ms_per_frame is not None else "-")
        if any(r.bytes_d2h_per_frame is not None for r in results):
            moved = (result.bytes_h2d_per_frame, result.bytes_d2h_per_frame)
            row.append("-" if moved[1] is None else f"{moved[0] / 1024:.0f} / {moved[1] / 1024:.0f}")
        row.append(f"{result.peak_rss_mb:.0f}")
        rows.append(row)
    return rows


def _triple(summary: dict[str, float] | None) -> str:
    """The median alone: p90 and p99 are in the JSON, and three numbers per cell do not fit 80 columns."""
    if not summary:
        return "-"
    return f"{summary['p50']:.2f}"


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
