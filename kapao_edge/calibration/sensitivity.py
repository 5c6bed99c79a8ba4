"""``--exclude auto``: find the Conv layers that INT8 hurts most and keep them in float.

Each layer group ("model.N": its convs, and for ``--target cpu`` their SiLUs) is quantized alone
(the rest float) and its output error measured on held-out images; then, worst first, groups are
taken out of a fully quantized model until the error meets the goal. Trial quantizations reuse the
cached calibration ranges, so they cost no calibration.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from kapao_edge.calibration.cache import CalibrationStats
from kapao_edge.calibration.graph import conv_groups, silu_nodes
from kapao_edge.calibration.int8 import quantize_from_stats

DEFAULT_ERROR_GOAL = 0.01
NO_LOSS_FRACTION = 0.1  # a group this far under the goal is "no loss"
TOP_ROWS = 100  # rows per image compared: the candidates post-processing would keep


@dataclass
class SensitivityReport:
    error_goal: float
    error_fp32_vs_int8_all: float
    error_final: float
    ranking: list[dict[str, Any]]  # [{"group", "nodes", "error"}], worst first
    excluded_groups: list[str]
    excluded_nodes: list[str]
    held_out_images: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prediction_error(reference: np.ndarray, candidate: np.ndarray, num_keypoints: int, input_side: int) -> float:
    """Output error that matters for OKS: box and keypoint positions (fraction of the input side) plus
    person score, on each image's top rows by reference score.

    Rows are (x, y, w, h, obj, cls_person, cls_kp * K, kp_xy * 2K).
    """
    score = reference[..., 4] * reference[..., 5]  # (B, N)
    top = np.argsort(-score, axis=1, kind="stable")[:, :TOP_ROWS]  # (B, T)
    ref = np.take_along_axis(reference, top[..., None], axis=1)  # (B, T, No)
    cand = np.take_along_axis(candidate, top[..., None], axis=1)  # (B, T, No)
    kp_start = 6 + num_keypoints
    positions = np.concatenate([ref[..., :4] - cand[..., :4], ref[..., kp_start:] - cand[..., kp_start:]], axis=-1)
    position_error = float(np.abs(positions).mean()) / input_side
    score_error = float(np.abs(ref[..., 4] * ref[..., 5] - cand[..., 4] * cand[..., 5]).mean())
    return position_error + score_error


def run_sensitivity(
    model_path: str | Path,
    stats: CalibrationStats,
    batches: list[np.ndarray],
    *,
    target: str,
    base_exclusions: list[str],
    num_keypoints: int,
    error_goal: float = DEFAULT_ERROR_GOAL,
    max_excluded_fraction: float = 0.25,
    on_step: Callable[[str], None] | None = None,
    images: Any = None,
) -> SensitivityReport:
    """Rank the Conv groups by the error each causes alone, then exclude the worst until ``error_goal``.

    ``base_exclusions`` (``default_exclusions``: heads; the stem, unless the cpu flavour quantizes it;
    for tensorrt the blocks feeding the heads) stay float unless their group alone costs less than a
    tenth of the goal.
    """
    import onnx

    model = onnx.load(str(model_path))
    groups = conv_groups(model.graph)
    if target == "cpu":  # that recipe quantizes SiLU too: a group is its convs and their SiLUs
        groups = {name: nodes + silu_nodes(model.graph, nodes) for name, nodes in groups.items()}
    input_side = int(max(batches[0].shape[2:]))
    reference = _run(model.SerializeToString(), batches)

    def error_of(quantized: Any) -> float:
        outputs = _run(quantized.SerializeToString(), batches)
        return float(np.mean([
            prediction_error(ref, out, num_keypoints, input_side) for ref, out in zip(reference, outputs)
        ]))

    ranking = []
    for name, nodes in groups.items():
        if on_step:
            on_step(f"sensitivity: {name}")
        quantized = quantize_from_stats(model_path, stats, target=target, nodes_to_exclude=[], nodes_to_quantize=nodes, images=images)
        ranking.append({"group": name, "nodes": nodes, "error": error_of(quantized)})
    ranking.sort(key=lambda item: (-item["error"], item["group"]))

    # The default exclusions (stem, heads) are quantized only where measurement shows no loss.
    notes = []
    harmless = {n for item in ranking if item["error"] <= NO_LOSS_FRACTION * error_goal for n in item["nodes"]}
    released = [n for n in base_exclusions if n in harmless]
    if released:
        notes.append(f"default exclusions quantized after all (no measurable loss): {', '.join(released)}")
    excluded = [n for n in base_exclusions if n not in harmless]
    excluded_groups: list[str] = []
    all_error = current = error_of(quantize_from_stats(model_path, stats, target=target, nodes_to_exclude=excluded, images=images))
    limit = max(1, int(max_excluded_fraction * len(groups)))
    for item in ranking:
        if current <= error_goal:
            break
        if all(n in excluded for n in item["nodes"]):
            continue
        if len(excluded_groups) >= limit:
            notes.append(f"stopped after excluding {limit} groups (max {max_excluded_fraction:.0%}); goal not met")
            break
        excluded_groups.append(item["group"])
        excluded += [n for n in item["nodes"] if n not in excluded]
        current = error_of(quantize_from_stats(model_path, stats, target=target, nodes_to_exclude=excluded, images=images))
    return SensitivityReport(
        error_goal=error_goal,
        error_fp32_vs_int8_all=all_error,
        error_final=current,
        ranking=ranking,
        excluded_groups=excluded_groups,
        excluded_nodes=excluded,
        held_out_images=sum(len(b) for b in batches),
        notes=notes,
    )


def _run(model_bytes: bytes, batches: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return [session.run(None, {name: batch})[0] for batch in batches]  # each (B, N, No)
