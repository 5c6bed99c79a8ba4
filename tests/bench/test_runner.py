"""Benchmark library: stage breakdown, percentiles, fixed-shape handling, report outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kapao_edge.bench import BenchSettings, benchmark_engine, ratio_vs_first, render_table, to_json, write_plot
from kapao_edge.bench.stats import summarize
from kapao_edge.engines import load_engine
from kapao_edge.errors import InputError


def test_summarize_percentiles_in_ms() -> None:
    summary = summarize([0.001 * i for i in range(1, 101)])  # 1 .. 100 ms
    assert summary["min"] == pytest.approx(1.0) and summary["p50"] == pytest.approx(50.5)
    assert summary["p50"] <= summary["p90"] <= summary["p99"] <= 100.0
    assert summarize([])["p50"] == 0.0


def test_torch_engine_breakdown(reference_dir: Path) -> None:
    settings = BenchSettings(batch=2, imgsz=(128, 128), iters=4, warmup=1)
    with load_engine(reference_dir / "kapao_tiny_coco_random.pt") as engine:
        result = benchmark_engine(engine, "tiny", settings)
    assert set(result.stages) == {"preprocess", "infer", "postprocess"}
    assert all(s["p50"] > 0 for s in result.stages.values())
    stage_sum = sum(s["mean"] for s in result.stages.values())
    assert result.total["mean"] == pytest.approx(stage_sum, rel=0.2)  # stages cover the loop
    assert result.throughput == pytest.approx(2 * 4 / (result.total["mean"] * 4 / 1e3), rel=1e-6)
    assert result.gpu_memory_mb is None and result.peak_rss_mb > 0


def test_fixed_shape_engine_overrides_settings(reference_dir: Path, onnx_export) -> None:
    path = onnx_export(reference_dir / "kapao_tiny_coco_random.pt", dynamic="none", imgsz=(128, 192), batch=2)
    with load_engine(path) as engine:
        result = benchmark_engine(engine, "fixed", BenchSettings(batch=1, imgsz=(640, 640), iters=2, warmup=0))
    assert (result.batch, result.input_hw) == (2, (128, 192))
    assert any("fixed input 128x192" in note for note in result.notes)


def test_reports(reference_dir: Path, tmp_path: Path, monkeypatch) -> None:
    settings = BenchSettings(imgsz=(128, 128), iters=2, warmup=0)
    with load_engine(reference_dir / "kapao_tiny_coco_random.pt") as engine:
        results = [benchmark_engine(engine, name, settings) for name in ("a", "b")]
    assert ratio_vs_first(results)[0] == 1.0
    payload = json.loads(to_json(results, settings))
    assert [r["name"] for r in payload["results"]] == ["a", "b"] and payload["settings"]["imgsz"] == [128, 128]
    assert render_table(results).row_count == 2
    write_plot(results, tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if the optional extra were missing
    with pytest.raises(InputError, match=r"kapao-edge\[plot\]"):
        write_plot(results, tmp_path / "q.png")
    assert not (tmp_path / "q.png").exists()


def test_settings_are_validated() -> None:
    with pytest.raises(InputError, match="--iters"):
        BenchSettings(iters=0)
    with pytest.raises(InputError, match="--batch"):
        BenchSettings(batch=0)


def test_interleaved_timing_runs_warmup_then_alternates_variants():
    from kapao_edge.bench.stats import interleaved_ms

    calls: list[str] = []
    samples = interleaved_ms({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, rounds=3, warmup=2)
    assert calls == ["a", "a", "b", "b"] + ["a", "b"] * 3
    assert {name: len(values) for name, values in samples.items()} == {"a": 3, "b": 3}
    assert all(value >= 0.0 for values in samples.values() for value in values)


def test_interleaved_timing_pauses_before_each_call_outside_the_timed_span():
    import time

    from kapao_edge.bench.stats import interleaved_ms

    started = time.perf_counter()
    samples = interleaved_ms({"a": lambda: None, "b": lambda: None}, rounds=2, warmup=0, idle_s=0.05)
    assert time.perf_counter() - started >= 4 * 0.05  # one pause per timed call
    assert all(value < 50.0 for values in samples.values() for value in values)  # the pause is not timed
