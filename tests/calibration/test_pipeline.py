"""quantize_onnx end to end: files, metadata, reports, explicit and automatic exclusions, bad options."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest

from kapao_edge.calibration.graph import producers_of, silu_nodes
from kapao_edge.calibration.int8 import default_exclusions
from kapao_edge.calibration.pipeline import quantize_onnx
from kapao_edge.engines import load_engine
from kapao_edge.errors import EngineError, InputError
from kapao_edge.export.metadata import read_onnx_metadata, set_onnx_metadata


def _metadata(path: Path) -> dict:
    return json.loads(read_onnx_metadata(onnx.load(str(path))))


def test_int8_file_carries_precision_and_calibration_summary(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    out = tmp_path / "tiny_int8.onnx"
    report = quantize_onnx(
        tiny_onnx, precision="int8", calib=synth_set / "person_keypoints.json", calib_images=4, imgsz=128, out=out
    )
    metadata = _metadata(out)
    assert metadata["precision"] == "int8"
    calibration = metadata["calibration"]
    assert calibration["method"] == "meanmax" and calibration["images"] == 4 and calibration["target"] == "tensorrt"
    assert calibration["excluded_nodes"] == report.excluded_nodes
    assert report.excluded_nodes == default_exclusions(onnx.load(str(tiny_onnx)))
    assert len(calibration["data_hash"]) == 64
    saved = json.loads(Path(report.report_path).read_text())
    assert saved["path"] == str(out) and saved["details"]["quantized_convs"] > 0
    assert (tmp_path / "calib_cache").is_dir()

    again = quantize_onnx(
        tiny_onnx, precision="int8", calib=synth_set / "person_keypoints.json", calib_images=4, imgsz=128, out=out
    )
    assert again.from_cache


def test_fp16_file_and_engine_metadata(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    out = tmp_path / "tiny_fp16.onnx"
    report = quantize_onnx(tiny_onnx, precision="fp16", calib=synth_set / "images", calib_images=2, imgsz=128, out=out)
    assert report.details["overflow_nodes"] == [] and report.details["fp16_nodes"] > 0
    with load_engine(out) as engine:
        assert engine.metadata.precision == "fp16"
        assert engine.metadata.calibration["images"] == 2


def test_explicit_exclusions_and_unknown_names(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    convs = [node.name for node in onnx.load(str(tiny_onnx)).graph.node if node.op_type == "Conv"]
    report = quantize_onnx(
        tiny_onnx, precision="int8", calib=synth_set / "images", calib_images=2, imgsz=128,
        exclude=f"{convs[1]},{convs[2]}", out=tmp_path / "explicit.onnx",
    )
    assert report.excluded_nodes == [convs[1], convs[2]]
    assert report.details["quantized_convs"] == len(convs) - 2
    with pytest.raises(InputError, match="unknown nodes no_such_conv"):
        quantize_onnx(tiny_onnx, precision="int8", calib=synth_set / "images", calib_images=2, imgsz=128,
                      exclude="no_such_conv", out=tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_auto_exclusion_writes_a_ranking(tiny_onnx: Path, synth_set: Path, tmp_path: Path):
    out = tmp_path / "auto.onnx"
    report = quantize_onnx(
        tiny_onnx, precision="int8", calib=synth_set / "images", calib_images=6, imgsz=128, exclude="auto",
        error_goal=0.0, out=out,  # an unreachable goal: exclusion runs to its cap
    )
    ranking = json.loads(Path(report.sensitivity_path).read_text())
    errors = [item["error"] for item in ranking["ranking"]]
    assert errors == sorted(errors, reverse=True) and len(errors) > 5
    defaults = set(default_exclusions(onnx.load(str(tiny_onnx))))  # stem and heads, float from the start
    worst_new = next(item for item in ranking["ranking"] if not set(item["nodes"]) <= defaults)
    assert ranking["excluded_groups"][0] == worst_new["group"]  # worst first, skipping groups already float
    assert ranking["error_final"] <= ranking["error_fp32_vs_int8_all"]
    assert set(worst_new["nodes"]) <= set(report.excluded_nodes)


def test_auto_exclusion_for_the_cpu_target_keeps_each_excluded_conv_silu_float_too(
    tiny_onnx: Path, synth_set: Path, tmp_path: Path
):
    """The cpu recipe quantizes SiLU: a conv kept float whose SiLU stays INT8 would still feed its
    readers UINT8-rounded values, so its group must carry the SiLU along."""
    report = quantize_onnx(
        tiny_onnx, precision="int8", calib=synth_set / "images", calib_images=6, imgsz=128, exclude="auto",
        target="cpu", error_goal=0.0, out=tmp_path / "auto_cpu.onnx",
    )
    ranking = json.loads(Path(report.sensitivity_path).read_text())
    first = next(item for item in ranking["ranking"] if item["group"] == ranking["excluded_groups"][0])
    source = onnx.load(str(tiny_onnx)).graph
    all_convs = {node.name for node in source.node if node.op_type == "Conv"}
    convs = [name for name in first["nodes"] if name in all_convs]
    assert convs and set(silu_nodes(source, convs)) <= set(first["nodes"]) <= set(report.excluded_nodes)

    written = onnx.load(str(tmp_path / "auto_cpu.onnx")).graph
    producers = producers_of(written)
    names = set(silu_nodes(written, convs))
    assert names
    for node in written.node:
        if node.name in names:  # reads float: no DequantizeLinear in front of the kept SiLU
            assert all(getattr(producers.get(name), "op_type", None) != "DequantizeLinear" for name in node.input)


def test_bad_requests_are_refused_without_output(tiny_onnx: Path, tmp_path: Path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no images"):
        quantize_onnx(tiny_onnx, precision="int8", calib=empty, out=tmp_path / "x.onnx")
    with pytest.raises(InputError, match="needs calibration images"):
        quantize_onnx(tiny_onnx, precision="int8", out=tmp_path / "x.onnx")
    with pytest.raises(InputError, match="--precision"):
        quantize_onnx(tiny_onnx, precision="int4", out=tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_broken_metadata_is_a_clear_error_not_a_traceback(tiny_onnx: Path, tmp_path: Path):
    model = onnx.load(str(tiny_onnx))
    set_onnx_metadata(model, "{not json")
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    with pytest.raises(EngineError, match="metadata is not valid JSON"):
        quantize_onnx(broken, precision="fp16", out=tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()
