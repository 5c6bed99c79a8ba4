"""Parity library: ΔAP and tolerance rules, the JSON shape, and a real run on the COCO sample."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from kapao_edge.errors import InputError
from kapao_edge.eval.parity import ParityReport, VariantResult, delta_within, parse_precisions, run_parity


def test_delta_and_tolerance_rules():
    assert delta_within(50.0, 49.9, 0.2) == (pytest.approx(-0.1), True)
    assert delta_within(50.0, 48.0, 1.0) == (pytest.approx(-2.0), False)
    assert delta_within(math.nan, math.nan, 0.05) == (None, True)  # undefined on both sides
    assert delta_within(50.0, math.nan, 0.05) == (None, False)


def test_precision_lists():
    assert parse_precisions("fp32, FP16,int8,fp16") == ["fp32", "fp16", "int8"]
    with pytest.raises(InputError, match="--precisions"):
        parse_precisions("fp32,bf16")


def test_json_has_no_nan():
    variant = VariantResult("m", "onnxruntime", "fp16", "m.onnx", {"AP": math.nan, "AP50": 1.0, "AR": 2.0}, None, True, 0.2)
    report = ParityReport({"AP": math.nan, "AP50": 1.0, "AR": 2.0}, [variant], 1)
    data = json.loads(report.to_json())
    assert data["reference"]["AP"] is None and data["variants"][0]["AP"] is None
    assert data["variants"][0]["within_tolerance"] is True


def test_fp32_onnx_has_zero_delta_on_the_coco_sample(onnx_export, reference_dir: Path, coco_sample_dir: Path):
    weights = reference_dir / "kapao_tiny_coco_random.pt"
    exported = onnx_export(weights, dynamic="batch+hw", imgsz=(256, 256))
    report = run_parity(
        weights, coco_sample_dir / "person_keypoints_sample.json", coco_sample_dir, [exported], imgsz=256
    )
    (variant,) = report.variants
    assert variant.precision == "fp32" and variant.backend == "onnxruntime"
    assert variant.delta_AP == pytest.approx(0.0, abs=0.05) and variant.within_tolerance
    assert report.passed and report.num_images == 4


def test_matched_deltas_pair_poses_by_position_not_by_score_rank():
    import numpy as np

    from kapao_edge.eval.parity import matched_detection_deltas
    from kapao_edge.postprocess import Poses

    def poses(keypoints, scores):
        keypoints = np.asarray(keypoints, np.float32)  # (P, K, 3)
        boxes = np.zeros((len(keypoints), 4), np.float32)
        return Poses(keypoints=keypoints, boxes=boxes, scores=np.asarray(scores, np.float32))

    a = np.array([[[10, 10, 1], [12, 12, 1]]], np.float32)
    b = np.array([[[100, 100, 1], [102, 102, 1]]], np.float32)
    reference = {1: poses(np.concatenate([a, b]), [0.5001, 0.5])}
    swapped = {1: poses(np.concatenate([b + 1, a]), [0.5002, 0.5])}  # near-tied scores changed rank
    matched = matched_detection_deltas(reference, swapped)
    assert matched["matched_keypoint_error_px_mean"] == pytest.approx(np.sqrt(2) / 2)
    assert matched["matched_score_error_max"] == pytest.approx(0.0002, abs=1e-6)  # b (0.5) paired with b + 1 (0.5002)
    assert matched["pose_count_difference"] == 0
    fewer = {1: poses(a, [0.5001])}
    assert matched_detection_deltas(reference, fewer)["pose_count_difference"] == 1
