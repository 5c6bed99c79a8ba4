"""FP32 ONNX -> FP16 or INT8 ONNX with calibration, metadata and a JSON report: what `quantize` runs."""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from kapao_edge.calibration.cache import DEFAULT_METHOD, METHODS, CalibrationStats, calibrate, tensor_abs_max
from kapao_edge.calibration.cpu_graph import integer_head_sources, tune_conv_kernels
from kapao_edge.calibration.fp16 import convert_to_fp16
from kapao_edge.calibration.graph import quantized_convs
from kapao_edge.calibration.int8 import (
    TARGETS,
    default_exclusions,
    preprocess_for_cpu,
    quantize_from_stats,
    recipe,
)
from kapao_edge.calibration.reader import DEFAULT_CALIBRATION_IMAGES, CalibrationImages, InputSpec
from kapao_edge.calibration.sensitivity import DEFAULT_ERROR_GOAL, run_sensitivity
from kapao_edge.errors import InputError
from kapao_edge.utils.io import atomic_path, sha256_file, write_text_atomic

PRECISIONS = ("fp16", "int8")
SENSITIVITY_IMAGES = 8  # held-out images for --exclude auto
PREPROCESS_VERSION = 2  # bumped when preprocess_for_cpu changes what it writes (2: space-to-depth stem)


@dataclass
class QuantizeReport:
    path: str
    precision: str
    target: str | None
    source: str
    calibration: dict[str, Any] | None
    excluded_nodes: list[str]
    from_cache: bool
    file_size: int
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    report_path: str | None = None
    sensitivity_path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def default_output(onnx_path: Path, precision: str, target: str) -> Path:
    suffix = precision if precision == "fp16" or target == "tensorrt" else f"{precision}_{target}"
    return onnx_path.with_name(f"{onnx_path.stem}_{suffix}.onnx")


def quantize_onnx(
    onnx_path: str | Path,
    *,
    precision: str,
    calib: str | Path | None = None,
    calib_images: int = DEFAULT_CALIBRATION_IMAGES,
    method: str = DEFAULT_METHOD,
    exclude: str | None = None,
    target: str = "tensorrt",
    out: str | Path | None = None,
    seed: int = 0,
    imgsz: int | None = None,
    cache_dir: str | Path | None = None,
    error_goal: float = DEFAULT_ERROR_GOAL,
    progress: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> QuantizeReport:
    """Write the reduced-precision file atomically (nothing on failure) and its JSON report beside it."""
    import onnx

    started = time.perf_counter()
    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise InputError(f"ONNX file not found: {onnx_path}")
    if precision not in PRECISIONS:
        raise InputError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if target not in TARGETS:
        raise InputError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    if precision == "int8" and calib is None:
        raise InputError("INT8 needs calibration images: pass --calib DIR, annotations JSON or list file")
    out = Path(out) if out is not None else default_output(onnx_path, precision, target)
    if out.suffix.lower() != ".onnx":
        raise InputError(f"the output file must end in .onnx, got {out}")
    if out.resolve() == onnx_path.resolve():
        raise InputError("the output would overwrite the input model; choose another --out")
    cache_dir = Path(cache_dir) if cache_dir is not None else (out.parent / "calib_cache")
    metadata = _read_metadata(onnx_path)
    spec = InputSpec.from_onnx(onnx_path, imgsz)
    images = CalibrationImages(calib, spec, count=calib_images, seed=seed, progress=progress) if calib else None
    notes: list[str] = []
    if precision == "fp16":
        made = _make_fp16(onnx_path, images, cache_dir, notes)
    else:
        assert images is not None
        made = _make_int8(onnx_path, images, spec, metadata, cache_dir, notes, method=method, target=target,
                          exclude=exclude, error_goal=error_goal, seed=seed, on_step=on_step)
    model, excluded, summary, from_cache = made.model, made.excluded, made.summary, made.from_cache
    details, sensitivity = made.details, made.sensitivity

    if summary is not None:
        summary = {**summary, "excluded_nodes": excluded, "target": target if precision == "int8" else None}
    _write_metadata(model, metadata, precision=precision, calibration=summary)
    with atomic_path(out) as tmp:
        onnx.save_model(model, str(tmp))
    report = QuantizeReport(
        path=str(out), precision=precision, target=target if precision == "int8" else None, source=str(onnx_path),
        calibration=summary, excluded_nodes=excluded, from_cache=from_cache, file_size=out.stat().st_size,
        seconds=time.perf_counter() - started, details=details, notes=notes,
    )
    if sensitivity is not None:
        sensitivity_path = out.with_suffix(".sensitivity.json")
        write_text_atomic(sensitivity_path, json.dumps(sensitivity.to_dict(), indent=2))
        report.sensitivity_path = str(sensitivity_path)
    report.report_path = str(out.with_suffix(".quant.json"))
    write_text_atomic(report.report_path, json.dumps(report.to_dict(), indent=2))
    return report


@dataclass
class _Made:
    model: Any
    excluded: list[str]
    summary: dict[str, Any] | None
    from_cache: bool
    details: dict[str, Any]
    sensitivity: Any = None


def _make_fp16(onnx_path: Path, images: CalibrationImages | None, cache_dir: Path, notes: list[str]) -> _Made:
    """FP16 with overflow detection on all tensors' MinMax ranges when calibration images are given."""
    import onnx

    abs_max, summary, from_cache = None, None, False
    if images is not None:
        stats = calibrate(onnx_path, images, method="minmax", op_types=None, cache_dir=cache_dir)
        abs_max, summary, from_cache = tensor_abs_max(stats), stats.summary, stats.from_cache
    else:
        notes.append("no --calib: FP16 overflow was not checked on data (only weights)")
    model, report = convert_to_fp16(onnx.load(str(onnx_path)), abs_max=abs_max)
    return _Made(model, report.overflow_nodes, summary, from_cache, asdict(report))


def _make_int8(onnx_path: Path, images: CalibrationImages, spec: InputSpec, metadata: dict, cache_dir: Path,
               notes: list[str], *, method: str, target: str, exclude: str | None, error_goal: float, seed: int,
               on_step: Callable[[str], None] | None) -> _Made:
    """Calibrate (or read the cache), choose the float Convs, quantize; the cpu target pre-processes first."""
    import onnx

    with tempfile.TemporaryDirectory(prefix="kapao-quant-") as work:
        source = _preprocessed(onnx_path, cache_dir, Path(work), notes) if target == "cpu" else onnx_path
        stats = calibrate(source, images, method=method, op_types=list(recipe(target).ops), cache_dir=cache_dir)
        graph_model = onnx.load(str(source))
        base = default_exclusions(graph_model, target)
        excluded = _exclusions(exclude, base, graph_model)
        sensitivity = None
        if exclude == "auto":
            sensitivity = _auto_exclude(source, stats, images, spec, target, base, metadata, error_goal, seed, notes, on_step)
            excluded = sensitivity.excluded_nodes
        model = quantize_from_stats(source, stats, target=target, nodes_to_exclude=excluded, images=images)
    excluded_set = set(excluded)
    integer = integer_head_sources(model)  # excluded head convs that now run as INT8 matmuls, float out
    float_convs = [node.name for node in graph_model.graph.node
                   if node.op_type == "Conv" and node.name in excluded_set and node.name not in integer]
    details = {"target": target, "quantized_convs": len(quantized_convs(model.graph)), "float_convs": float_convs,
               "float_other_nodes": len(excluded_set) - len(float_convs) - len(integer)}
    if target == "cpu":
        details["integer_heads"] = integer
        # which MLAS kernel each conv runs on, timed on this machine at the calibration size (cpu_graph.py)
        if on_step:
            on_step("timing conv kernels")
        details["conv_kernels"] = tune_conv_kernels(model, (1, 3, spec.height, spec.width))
    return _Made(model, excluded, stats.summary, stats.from_cache, details, sensitivity)


def _read_metadata(onnx_path: Path) -> dict[str, Any]:
    import onnx

    from kapao_edge.export.metadata import require_onnx_metadata

    data = require_onnx_metadata(onnx.load(str(onnx_path), load_external_data=False), onnx_path)
    if data.get("precision", "fp32") != "fp32":
        raise InputError(f"{onnx_path} is already {data['precision']}; quantize the FP32 export")
    return data


def _write_metadata(model: Any, metadata: dict[str, Any], *, precision: str, calibration: dict | None) -> None:
    from kapao_edge.export.metadata import set_onnx_metadata

    updated = {**metadata, "precision": precision, "calibration": calibration}
    set_onnx_metadata(model, json.dumps(updated, sort_keys=True))


def _exclusions(exclude: str | None, base: list[str], model: Any) -> list[str]:
    if exclude in (None, "", "auto", "default"):
        return list(base)
    if exclude == "none":
        return []
    names = [part.strip() for part in exclude.split(",") if part.strip()]
    known = {node.name for node in model.graph.node}
    unknown = [name for name in names if name not in known]
    if unknown:
        convs = [node.name for node in model.graph.node if node.op_type == "Conv"]
        raise InputError(f"--exclude names unknown nodes {', '.join(unknown)}; Conv nodes are e.g. {', '.join(convs[:5])}")
    return names


def _preprocessed(onnx_path: Path, cache_dir: Path, work: Path, notes: list[str]) -> Path:
    """ORT pre-processing, kept in the cache by source hash so calibration caching still hits."""
    target = cache_dir / f"pre{PREPROCESS_VERSION}-{sha256_file(onnx_path)[:20]}.onnx"
    if not target.is_file():
        cache_dir.mkdir(parents=True, exist_ok=True)
        scratch = work / "pre.onnx"
        notes.append(preprocess_for_cpu(onnx_path, scratch))
        with atomic_path(target) as tmp:
            tmp.write_bytes(scratch.read_bytes())
    return target


def _auto_exclude(source, stats: CalibrationStats, images: CalibrationImages, spec: InputSpec, target: str,
                  base: list[str], metadata: dict, error_goal: float, seed: int, notes: list[str], on_step):
    held_paths = images.held_out[:SENSITIVITY_IMAGES]
    if not held_paths:
        held_paths = images.paths[-SENSITIVITY_IMAGES:]
        notes.append("no images beyond the calibration sample: sensitivity measured on calibration images")
    held = CalibrationImages(held_paths, spec, count=len(held_paths), seed=seed)
    batches = list(held.batches())
    return run_sensitivity(
        source, stats, batches, target=target, base_exclusions=base,
        num_keypoints=int(metadata["num_keypoints"]), error_goal=error_goal, on_step=on_step, images=images,
    )
