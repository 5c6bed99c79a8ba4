"""The torch CUDA engine (CUDA graphs, pinned buffers, device letterbox): runs wherever torch sees a GPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kapao_edge import PosePipeline, load_engine

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")


def _frames(count: int) -> list[np.ndarray]:
    from kapao_edge.data.synth import generate_scene

    return [generate_scene(np.random.default_rng(40 + i), "coco", imgsz=(480, 640)).image for i in range(count)]


def test_graph_replay_equals_the_cpu_reference() -> None:
    from kapao_edge.export.verify import sample_batch

    images = sample_batch([2, 3, 448, 448], seed=1)  # (B, 3, H, W)
    with load_engine("bundled") as cpu, load_engine("bundled", device="cuda", cuda_graph=True) as gpu:
        expected = cpu(images)
        for _ in range(3):  # capture on the first call, replay after
            actual = gpu.run(images, timed=True)
        assert set(actual.stages) == {"h2d", "infer", "d2h"} and all(v >= 0 for v in actual.stages.values())
        scale = np.abs(expected).max()
        assert np.abs(actual.predictions - expected).max() <= 1e-3 * scale


def test_fp16_compact_device_letterbox_matches_the_cpu_pipeline() -> None:
    frames = _frames(4)
    with load_engine("bundled") as cpu, load_engine(
        "bundled", device="cuda", precision="fp16", input_format="uint8", max_candidates=1000
    ) as gpu:
        reference = PosePipeline(cpu, imgsz=448, preprocess="host")
        deployed = PosePipeline(gpu, imgsz=448)  # auto: the device letterbox
        assert deployed.preprocessor.on_device
        for frame in frames:
            a, b = reference(frame), deployed(frame)
            assert a.letterbox == b.letterbox
            assert abs(len(a.poses) - len(b.poses)) <= 1  # FP16 may move a borderline score
        batch = deployed.run_batch(frames)  # one graph for a batch of 4
        assert [r.frame_index for r in batch] == [0, 1, 2, 3]
