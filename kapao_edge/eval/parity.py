"""AP parity: the PyTorch reference and each deployed variant (FP32/FP16/INT8 ONNX) on the same images.

Every variant goes through the same pre- and post-processing (``validate``), so a difference in AP
is the engine's own. A variant whose |ΔAP| exceeds its precision's tolerance fails the check.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kapao_edge.errors import InputError

DEFAULT_TOLERANCES = {"fp32": 0.05, "fp16": 0.2, "int8": 1.0}  # |ΔAP| on the 0-100 scale
VARIANT_PRECISIONS = ("fp32", "fp16", "int8")
REFERENCE_KEYS = ("AP", "AP50", "AP75", "AR")


@dataclass
class VariantResult:
    name: str
    backend: str
    precision: str
    path: str
    metrics: dict[str, float]
    delta_AP: float | None
    within_tolerance: bool
    tolerance: float
    detection_deltas: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "backend": self.backend,
            "precision": self.precision,
            "path": self.path,
            **{key: _finite(value) for key, value in self.metrics.items()},
            "delta_AP": _finite(self.delta_AP),
            "within_tolerance": self.within_tolerance,
            "tolerance": self.tolerance,
            "detection_deltas": self.detection_deltas,
        }


@dataclass
class ParityReport:
    reference: dict[str, Any]
    variants: list[VariantResult]
    num_images: int

    @property
    def passed(self) -> bool:
        return all(v.within_tolerance for v in self.variants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": {k: _finite(v) if isinstance(v, float) else v for k, v in self.reference.items()},
            "variants": [variant.to_dict() for variant in self.variants],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _finite(value: float | None) -> float | None:
    """JSON has no NaN: an undefined metric is null."""
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def parse_precisions(text: str) -> list[str]:
    names = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [name for name in names if name not in VARIANT_PRECISIONS]
    if unknown or not names:
        raise InputError(f"--precisions takes a comma list of {', '.join(VARIANT_PRECISIONS)}, got {text!r}")
    return list(dict.fromkeys(names))


def delta_within(reference_ap: float, variant_ap: float, tolerance: float) -> tuple[float | None, bool]:
    """(ΔAP, within tolerance); AP undefined on both sides counts as equal, on one side as a failure."""
    ref_nan, var_nan = math.isnan(reference_ap), math.isnan(variant_ap)
    if ref_nan or var_nan:
        return None, ref_nan and var_nan
    delta = variant_ap - reference_ap
    return delta, abs(delta) <= tolerance + 1e-9


def build_variants(
    weights: str | os.PathLike,
    precisions: list[str],
    work_dir: str | os.PathLike,
    *,
    imgsz: int,
    calib: str | os.PathLike | None,
    calib_images: int,
    seed: int = 0,
    on_step: Callable[[str], None] | None = None,
) -> list[Path]:
    """Export FP32 ONNX from ``weights`` and derive the FP16 / INT8 (tensorrt flavour) files from it."""
    from kapao_edge.calibration import quantize_onnx
    from kapao_edge.export import export_onnx
    from kapao_edge.model import read_checkpoint

    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    loaded = read_checkpoint(weights)
    fp32 = work / f"{loaded.path.stem}_fp32.onnx"
    if on_step:
        on_step(f"exporting {fp32.name}")
    export_onnx(loaded.model, fp32, imgsz=imgsz, dynamic="batch+hw", source_path=loaded.path)
    paths = {"fp32": fp32}
    for precision in ("fp16", "int8"):
        if precision not in precisions:
            continue
        if precision == "int8" and calib is None:
            raise InputError("the int8 variant needs calibration images: pass --calib")
        if on_step:
            on_step(f"making the {precision} variant")
        report = quantize_onnx(
            fp32, precision=precision, calib=calib, calib_images=calib_images, imgsz=imgsz,
            out=work / f"{loaded.path.stem}_{precision}.onnx", seed=seed, target="tensorrt",
        )
        paths[precision] = Path(report.path)
    return [paths[p] for p in precisions]


def run_parity(
    weights: str | os.PathLike,
    annotations: str | os.PathLike,
    images_dir: str | os.PathLike | None,
    variant_paths: list[Path],
    *,
    imgsz: int = 640,
    tolerances: dict[str, float] | None = None,
    progress: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> ParityReport:
    """Validate the torch reference and every variant file; compare AP and per-detection outputs.

    Every variant is post-processed with the reference's settings (official val thresholds plus what
    the checkpoint recommends), so a difference in AP is the network's, never the thresholds'.
    """
    from kapao_edge.engines import load_engine
    from kapao_edge.eval.validate import validate
    from kapao_edge.postprocess import PostprocessConfig

    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    if on_step:
        on_step("reference (torch fp32)")
    with load_engine(weights, backend="torch") as engine:
        config = PostprocessConfig.named("val", engine.metadata.postprocess)
        reference = validate(engine, annotations, images_dir, imgsz=imgsz, config=config, progress=progress)
    reference_info = {"name": "torch", "backend": "torch", "precision": "fp32", "path": str(weights), **reference.metrics}
    variants = []
    for path in variant_paths:
        if on_step:
            on_step(f"variant {Path(path).name}")
        with load_engine(path) as engine:
            precision = engine.metadata.precision
            result = validate(engine, annotations, images_dir, imgsz=imgsz, config=config, progress=progress)
            backend = engine.backend
        if precision not in tolerances:
            raise InputError(f"{path}: no tolerance for precision {precision!r}")
        delta, within = delta_within(reference.metrics["AP"], result.metrics["AP"], tolerances[precision])
        variants.append(VariantResult(
            name=Path(path).stem, backend=backend, precision=precision, path=str(path), metrics=result.metrics,
            delta_AP=delta, within_tolerance=within, tolerance=tolerances[precision],
            detection_deltas=matched_detection_deltas(reference.poses, result.poses),
        ))
    return ParityReport(reference_info, variants, reference.num_images)


def matched_detection_deltas(reference: dict[int, Any], other: dict[int, Any]) -> dict[str, float]:
    """Keypoint and score deltas of poses paired by position (greedy, closest mean keypoint distance first).

    Pairing by score rank would break when near-equal scores swap order, which tiny precision changes
    do; pairing by position measures how far each detection actually moved. Poses left unpaired (one
    run found more than the other) are counted, not measured.
    """
    keypoint_errors, score_errors, count_difference = [], [], 0
    for image_id, ref in reference.items():
        cand = other.get(image_id)
        if cand is None:
            continue
        count_difference += abs(len(ref) - len(cand))
        if not len(ref) or not len(cand):
            continue
        ref_xy, cand_xy = ref.keypoints[:, :, :2], cand.keypoints[:, :, :2]  # (P, K, 2), (Q, K, 2)
        distance = np.linalg.norm(ref_xy[:, None] - cand_xy[None], axis=-1).mean(axis=-1)  # (P, Q)
        order = np.argsort(distance, axis=None, kind="stable")
        used_ref, used_cand = set(), set()
        for flat in order:
            i, j = divmod(int(flat), distance.shape[1])
            if i in used_ref or j in used_cand:
                continue
            used_ref.add(i)
            used_cand.add(j)
            keypoint_errors.append(np.linalg.norm(ref_xy[i] - cand_xy[j], axis=-1))  # (K,)
            score_errors.append(abs(float(ref.scores[i]) - float(cand.scores[j])))
    kp = np.concatenate(keypoint_errors) if keypoint_errors else np.zeros(0)
    return {
        "matched_keypoint_error_px_mean": float(kp.mean()) if kp.size else 0.0,
        "matched_keypoint_error_px_p95": float(np.percentile(kp, 95)) if kp.size else 0.0,
        "matched_score_error_mean": float(np.mean(score_errors)) if score_errors else 0.0,
        "matched_score_error_max": float(np.max(score_errors)) if score_errors else 0.0,
        "pose_count_difference": int(count_difference),
    }


def write_parity_plot(report: ParityReport, target: str | os.PathLike) -> None:
    """AP per engine as bars, the reference as a line: a quick look at where precision costs accuracy."""
    from kapao_edge.bench.report import require_matplotlib

    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from kapao_edge.utils.io import atomic_path

    labels = [v.name for v in report.variants]
    values = [0.0 if math.isnan(v.metrics["AP"]) else v.metrics["AP"] for v in report.variants]
    colors = ["tab:green" if v.within_tolerance else "tab:red" for v in report.variants]
    fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(labels), 3.5))
    ax.bar(labels, values, color=colors)
    if not math.isnan(report.reference["AP"]):
        ax.axhline(report.reference["AP"], color="black", linestyle="--", label="torch fp32")
        ax.legend(loc="lower right", fontsize="small")
    ax.set_ylabel("AP (0-100)")
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
