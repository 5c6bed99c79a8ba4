"""Fixtures for CLI tests: real checkpoints that produce poses."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def posing_checkpoint(tmp_path_factory, reference_dir: Path) -> Path:
    """The fixture checkpoint with its head biased towards confident persons and keypoint objects.

    Random weights never rank the person class first, so a pipeline test would see no pose at all;
    raising the objectness and class-0 biases of the real network gives poses without faking any
    stage of the pipeline.
    """
    import torch

    from kapao_edge.model import load_model, save_checkpoint

    model = load_model(reference_dir / "kapao_tiny_coco_random.pt", fuse=False)
    no = model.detect.no
    with torch.no_grad():
        for conv in model.detect.m:  # one 1x1 conv per level: (na * No, C, 1, 1)
            bias = conv.bias.view(-1, no)  # (na, No)
            bias[:, 4] += 6.0  # objectness
            bias[:, 5] += 8.0  # person class
            bias[:, 6:8] += 8.0  # nose and left-eye keypoint objects compete with persons
    path = tmp_path_factory.mktemp("weights") / "posing.pt"
    save_checkpoint(model, path)
    return path
