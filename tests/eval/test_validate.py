"""The validation loop's test-time augmentation: the same passes through any dynamic engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bundled_scenes(tmp_path_factory) -> Path:
    """A few fresh scenes at the bundled model's size, so its poses are real ones."""
    from kapao_edge.data.synth import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("tta") / "scenes", 4, seed=424_242, imgsz=320, workers=0)


def test_tta_gives_the_same_poses_through_torch_and_onnxruntime(bundled_scenes: Path, onnx_export):
    from kapao_edge.data.coco import load_keypoint_dataset
    from kapao_edge.engines import load_engine
    from kapao_edge.engines.torch_backend import TorchEngine
    from kapao_edge.eval.parity import matched_detection_deltas
    from kapao_edge.eval.validate import predict_dataset
    from kapao_edge.model import read_checkpoint

    model = read_checkpoint("bundled").model.fuse()
    exported = onnx_export("bundled", dynamic="batch+hw", imgsz=(320, 320))
    dataset = load_keypoint_dataset(bundled_scenes)
    with TorchEngine(model) as torch_engine, load_engine(exported) as ort_engine:
        plain = predict_dataset(torch_engine, dataset, imgsz=320, progress=False)
        by_torch = predict_dataset(torch_engine, dataset, imgsz=320, progress=False, tta=True)
        by_ort = predict_dataset(ort_engine, dataset, imgsz=320, progress=False, tta=True)
    assert sum(len(p.scores) for p in by_torch.values()) > 0
    # Paired by position, not by rank: at validation thresholds hundreds of low-score poses per image
    # have near-equal scores, and float differences between the two runtimes may swap their order.
    deltas = matched_detection_deltas(by_torch, by_ort)
    assert deltas["pose_count_difference"] == 0, deltas
    assert deltas["matched_keypoint_error_px_p95"] < 0.01, deltas
    assert deltas["matched_score_error_max"] < 1e-3, deltas
    # Three passes change what survives NMS: TTA is really in the loop, not a no-op.
    assert any(
        len(plain[i].scores) != len(by_torch[i].scores) or not np.allclose(plain[i].keypoints, by_torch[i].keypoints)
        for i in plain
    )
