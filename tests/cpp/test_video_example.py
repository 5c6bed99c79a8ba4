"""The C++ end-to-end example (frame -> poses) against Python's PosePipeline on the same frames.

The example needs OpenCV C++ and the ONNX Runtime headers, which `.ci/cpp-sdk` installs and builds;
it then runs this file with KAPAO_VIDEO_POSES naming the binary. Without it these tests skip.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.slow

NUM_FRAMES = 10
IMGSZ = 448  # the bundled model's input size


@pytest.fixture(scope="module")
def example_binary() -> Path:
    path = os.environ.get("KAPAO_VIDEO_POSES")
    if not path:
        pytest.skip("KAPAO_VIDEO_POSES is not set (.ci/cpp-sdk builds the example and sets it)")
    if not Path(path).is_file():
        pytest.fail(f"KAPAO_VIDEO_POSES names a missing file: {path}")
    return Path(path)


@pytest.fixture(scope="module")
def bundled_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled model exported as today's float input / all-rows file, dynamic H and W."""
    out = tmp_path_factory.mktemp("onnx") / "bundled.onnx"
    subprocess.run(["kapao-edge", "export", "--weights", "bundled", "--imgsz", str(IMGSZ), str(IMGSZ),
                    "--out", str(out)], check=True, capture_output=True, text=True)
    return out


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short mp4 of synthetic multi-person scenes, 640x480."""
    from kapao_edge.data.synth import generate_scene

    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (640, 480))
    for index in range(NUM_FRAMES):
        writer.write(generate_scene(np.random.default_rng(100 + index), "coco", imgsz=(480, 640)).image)
    writer.release()
    return path


def run_example(binary: Path, model: Path, source: Path, out_dir: Path) -> subprocess.CompletedProcess:
    out_dir.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [str(binary), "--model", str(model), "--source", str(source), "--out-video", str(out_dir / "poses.mp4"),
         "--out-json", str(out_dir / "poses.jsonl"), "--imgsz", str(IMGSZ)],
        capture_output=True, text=True, timeout=300,
    )


def python_poses(model: Path, clip: Path) -> list:
    from kapao_edge.engines import load_engine
    from kapao_edge.pipeline import PosePipeline  # the reference pipeline

    pipeline = PosePipeline(load_engine(model), imgsz=IMGSZ)
    capture = cv2.VideoCapture(str(clip))
    results = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        results.append(pipeline(frame).poses)
    return results


def test_example_poses_equal_the_python_pipeline(example_binary: Path, bundled_onnx: Path, clip: Path,
                                                 tmp_path: Path) -> None:
    run = run_example(example_binary, bundled_onnx, clip, tmp_path)
    assert run.returncode == 0, run.stderr
    print(run.stdout)  # the per-stage timings, for the log
    assert "pre + post (C++)" in run.stdout
    lines = (tmp_path / "poses.jsonl").read_text().splitlines()
    assert len(lines) == NUM_FRAMES
    written = cv2.VideoCapture(str(tmp_path / "poses.mp4"))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == NUM_FRAMES

    expected = python_poses(bundled_onnx, clip)
    assert len(expected) == NUM_FRAMES
    assert sum(len(poses) for poses in expected) > 0
    for index, (line, want) in enumerate(zip(lines, expected)):
        frame = json.loads(line)
        assert frame["frame"] == index
        assert len(frame["poses"]) == len(want), f"frame {index}"
        if not frame["poses"]:
            continue
        keypoints = np.array([pose["keypoints"] for pose in frame["poses"]], np.float32)  # (P, K, 3)
        boxes = np.array([pose["box"] for pose in frame["poses"]], np.float32)  # (P, 4)
        scores = np.array([pose["score"] for pose in frame["poses"]], np.float32)  # (P,)
        np.testing.assert_allclose(keypoints[..., :2], want.keypoints[..., :2], atol=0.5, err_msg=f"frame {index}")
        np.testing.assert_allclose(keypoints[..., 2], want.keypoints[..., 2], atol=1e-3)
        np.testing.assert_allclose(boxes, want.boxes, atol=0.5)
        np.testing.assert_allclose(scores, want.scores, atol=1e-3)


def assert_failed_cleanly(run: subprocess.CompletedProcess, out_dir: Path, message: str) -> None:
    assert run.returncode == 1
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert run.stderr.startswith("error: ") and message in run.stderr, run.stderr
    assert list(out_dir.iterdir()) == []  # no output, not even a partial one


def test_missing_model(example_binary: Path, clip: Path, tmp_path: Path) -> None:
    run = run_example(example_binary, tmp_path / "absent.onnx", clip, tmp_path / "out")
    assert_failed_cleanly(run, tmp_path / "out", "model file not found")


def test_unreadable_video(example_binary: Path, bundled_onnx: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    run = run_example(example_binary, bundled_onnx, broken, tmp_path / "out")
    assert_failed_cleanly(run, tmp_path / "out", "cannot open video source")
    run = run_example(example_binary, bundled_onnx, tmp_path / "absent.mp4", tmp_path / "out")
    assert_failed_cleanly(run, tmp_path / "out", "cannot open video source")


def test_model_whose_output_is_not_kapao(example_binary: Path, bundled_onnx: Path, clip: Path,
                                        tmp_path: Path) -> None:
    """A loadable ONNX with KAPAO metadata whose output has 50 columns instead of 3K + 6 = 57."""
    import onnx
    from onnx import TensorProto, helper

    metadata = {p.key: p.value for p in onnx.load(str(bundled_onnx), load_external_data=False).metadata_props}
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])
    predictions = helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["batch", 10, 50])
    pooled = helper.make_node("GlobalAveragePool", ["images"], ["pooled"])  # (B, 3, 1, 1)
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [0, 1, 3])
    flat = helper.make_node("Reshape", ["pooled", "shape"], ["flat"])  # (B, 1, 3)
    repeats = helper.make_tensor("repeats", TensorProto.INT64, [3], [1, 10, 17])
    tiled = helper.make_node("Tile", ["flat", "repeats"], ["tiled"])  # (B, 10, 51)
    starts = helper.make_tensor("starts", TensorProto.INT64, [1], [0])
    ends = helper.make_tensor("ends", TensorProto.INT64, [1], [50])
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [2])
    sliced = helper.make_node("Slice", ["tiled", "starts", "ends", "axes"], ["predictions"])  # (B, 10, 50)
    graph = helper.make_graph([pooled, flat, tiled, sliced], "not_kapao", [images], [predictions],
                              initializer=[shape, repeats, starts, ends, axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    helper.set_model_props(model, metadata)
    wrong = tmp_path / "wrong.onnx"
    onnx.save(model, str(wrong))

    run = run_example(example_binary, wrong, clip, tmp_path / "out")
    assert_failed_cleanly(run, tmp_path / "out", "not KAPAO's")
