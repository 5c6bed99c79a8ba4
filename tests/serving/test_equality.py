"""Served poses equal local ``PosePipeline`` poses on the same frames, over HTTP and gRPC."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest


@pytest.fixture(scope="module")
def local_pipeline():
    from kapao_edge import load_engine
    from kapao_edge.runtime.pipeline import PosePipeline

    with load_engine("bundled") as engine:
        yield PosePipeline(engine)


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_served_poses_equal_local(server, local_pipeline, sample_frames, scheme):
    from kapao_edge.serving import Client

    url = server.http_url if scheme == "http" else server.grpc_url
    total = 0
    with Client(url) as client:
        assert client.preset.name == local_pipeline.preset.name
        for name, frame in sample_frames.items():
            served, info = client.infer(frame)
            result = local_pipeline(frame)
            local = result.poses
            assert info == result.letterbox, name
            assert len(served) == len(local), name
            np.testing.assert_allclose(served.keypoints, local.keypoints, atol=0.01, err_msg=name)
            np.testing.assert_allclose(served.boxes, local.boxes, atol=0.01, err_msg=name)
            np.testing.assert_allclose(served.scores, local.scores, atol=1e-4, err_msg=name)
            total += len(served)
    assert total > 0  # the samples hold people: an all-empty answer would prove nothing


def test_batched_concurrent_requests_equal_local(server, local_pipeline, sample_frames):
    """Many clients at once (Triton batches them): each answer is its own frame's poses."""
    from concurrent.futures import ThreadPoolExecutor

    from kapao_edge.serving import Client

    frames = list(sample_frames.values()) * 4
    client = Client(server.http_url)
    with ThreadPoolExecutor(8) as pool:
        served = list(pool.map(client, frames))
    client.close()
    for frame, poses in zip(frames, served):
        local = local_pipeline(frame).poses
        assert len(poses) == len(local)
        np.testing.assert_allclose(poses.keypoints, local.keypoints, atol=0.01)
    metrics = server.metrics()  # Triton's Prometheus endpoint counts what it served
    success = re.search(r'^nv_inference_request_success\{model="kapao",version="1"\} (\d+)', metrics, re.M)
    assert success and int(success.group(1)) >= len(frames)


def test_predict_server_writes_the_local_results(server, coco_sample_dir, tmp_path):
    def predict(*options: str) -> list:
        out = tmp_path / options[0].strip("-")
        subprocess.run([sys.executable, "-m", "kapao_edge.cli", "predict", str(coco_sample_dir), *options,
                        "--out", str(out), "--no-save-images"], check=True, capture_output=True, text=True)
        return json.loads((out / "results.json").read_text())

    served = predict("--server", server.http_url)
    local = predict("--weights", "bundled")
    assert len(served) == len(local) > 0
    for a, b in zip(served, local):
        assert a["image_id"] == b["image_id"]
        np.testing.assert_allclose(a["keypoints"], b["keypoints"], atol=0.01)
        np.testing.assert_allclose(a["bbox"], b["bbox"], atol=0.01)


def test_predict_server_refuses_model_options(serving_available, coco_sample_dir, tmp_path):
    result = subprocess.run([sys.executable, "-m", "kapao_edge.cli", "predict", str(coco_sample_dir), "--server",
                             "http://127.0.0.1:9", "--conf-thres", "0.3", "--out", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "--conf-thres" in result.stderr and "kapao-edge serve" in result.stderr
    assert not (tmp_path / "out").exists()
