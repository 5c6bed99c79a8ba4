"""Latency breakdown, throughput and memory of engines, side by side."""

from kapao_edge.bench.report import ratio_vs_first, render_table, to_json, write_plot
from kapao_edge.bench.runner import BenchResult, BenchSettings, benchmark_engine

__all__ = ["BenchResult", "BenchSettings", "benchmark_engine", "ratio_vs_first", "render_table", "to_json", "write_plot"]
