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
    subprocess.run(["kapao-edge", "export", "--weights", "bundled", "--imgsz", str(IMGSZ),
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
    from kapao_edge import PosePipeline  # the reference pipeline

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


def wrap_model(source: Path, target: Path, *, uint8_input: bool, max_candidates: int | None,
               floor: float = 0.01) -> None:
    """Today's float / all-rows export rewritten into the file formats of `export --input uint8` and
    `--max-candidates K`, with ONNX ops, so the engine's handling of both is checked before the
    exporter writes them: uint8 (B, H, W, 3) BGR in, and K rows of highest objectness above a
    floor, in row order, zero rows as padding, plus num_candidates (B,) int32."""
    import json as json_module

    import onnx
    from onnx import TensorProto, compose, helper

    model = onnx.load(str(source))
    metadata = json_module.loads({p.key: p.value for p in model.metadata_props}["kapao_edge"])
    num_outputs = 3 * metadata["num_keypoints"] + 6
    if uint8_input:
        pixels = helper.make_tensor_value_info("images", TensorProto.UINT8, ["batch", "height", "width", 3])
        scaled = helper.make_tensor_value_info("scaled", TensorProto.FLOAT, ["batch", 3, "height", "width"])
        nodes = [
            helper.make_node("Cast", ["images"], ["as_float"], to=TensorProto.FLOAT),
            helper.make_node("Div", ["as_float", "k255"], ["unit"]),  # v / 255 in float32, as NumPy
            helper.make_node("Gather", ["unit", "bgr_to_rgb"], ["rgb"], axis=3),
            helper.make_node("Transpose", ["rgb"], ["scaled"], perm=[0, 3, 1, 2]),
        ]
        init = [helper.make_tensor("k255", TensorProto.FLOAT, [], [255.0]),
                helper.make_tensor("bgr_to_rgb", TensorProto.INT64, [3], [2, 1, 0])]
        pre = helper.make_model(helper.make_graph(nodes, "uint8_input", [pixels], [scaled], initializer=init),
                                opset_imports=model.opset_import)
        pre.ir_version = model.ir_version
        model = compose.merge_models(pre, model, io_map=[("scaled", "images")], prefix2="net_")
        metadata["input_format"] = "uint8"
    if max_candidates is not None:
        full = "all_rows"  # the (B, N, No) output becomes an inner value
        for node in model.graph.node:
            node.output[:] = [full if name == model.graph.output[0].name else name for name in node.output]
        k = max_candidates
        nodes = [
            helper.make_node("Gather", [full, "four"], ["objectness"], axis=2),  # (B, N)
            helper.make_node("Greater", ["objectness", "floor"], ["above"]),
            helper.make_node("Cast", ["above"], ["above_i32"], to=TensorProto.INT32),
            helper.make_node("ReduceSum", ["above_i32", "axis1"], ["num_candidates"], keepdims=0),  # (B,)
            helper.make_node("Where", ["above", "objectness", "minus_one"], ["score"]),
            helper.make_node("TopK", ["score", "k"], ["top_values", "top_rows"], axis=1),  # (B, K)
            helper.make_node("Cast", ["top_rows"], ["top_rows_f"], to=TensorProto.FLOAT),
            helper.make_node("Neg", ["top_rows_f"], ["negated"]),
            helper.make_node("TopK", ["negated", "k"], ["_", "order"], axis=1),  # ascending row order
            helper.make_node("GatherElements", ["top_rows", "order"], ["rows"], axis=1),  # (B, K)
            helper.make_node("GatherElements", ["above_i32", "rows"], ["valid"], axis=1),
            helper.make_node("Cast", ["valid"], ["valid_f"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["rows", "axis2"], ["rows3"]),  # (B, K, 1)
            helper.make_node("Shape", ["rows3"], ["rows3_shape"]),
            helper.make_node("Slice", ["rows3_shape", "zero", "two", "zero"], ["bk"]),
            helper.make_node("Concat", ["bk", "no"], ["gather_shape"], axis=0),
            helper.make_node("Expand", ["rows3", "gather_shape"], ["gather_rows"]),  # (B, K, No)
            helper.make_node("GatherElements", [full, "gather_rows"], ["selected"], axis=1),
            helper.make_node("Unsqueeze", ["valid_f", "axis2"], ["valid3"]),
            helper.make_node("Mul", ["selected", "valid3"], ["predictions"]),  # zero rows: padding
        ]
        ints = lambda name, values: helper.make_tensor(name, TensorProto.INT64, [len(values)], values)  # noqa: E731
        init = [helper.make_tensor("four", TensorProto.INT64, [], [4]),
                helper.make_tensor("floor", TensorProto.FLOAT, [], [floor]),
                helper.make_tensor("minus_one", TensorProto.FLOAT, [], [-1.0]),
                ints("axis1", [1]), ints("axis2", [2]), ints("k", [k]), ints("zero", [0]), ints("two", [2]),
                ints("no", [num_outputs])]
        graph = model.graph
        graph.node.extend(nodes)
        graph.initializer.extend(init)
        del graph.output[:]
        graph.output.extend([
            helper.make_tensor_value_info("predictions", TensorProto.FLOAT, ["batch", k, num_outputs]),
            helper.make_tensor_value_info("num_candidates", TensorProto.INT32, ["batch"]),
        ])
        metadata["max_candidates"] = k
    del model.metadata_props[:]
    helper.set_model_props(model, {"kapao_edge": json.dumps(metadata)})
    onnx.checker.check_model(model)
    onnx.save(model, str(target))


@pytest.mark.parametrize(("uint8_input", "max_candidates"), [(True, None), (False, 300), (True, 300)])
def test_uint8_and_compact_files(example_binary: Path, bundled_onnx: Path, clip: Path, tmp_path: Path,
                                 uint8_input: bool, max_candidates: int | None) -> None:
    """The same poses from the file formats the exporter's --input uint8 / --max-candidates write."""
    wrapped = tmp_path / "wrapped.onnx"
    wrap_model(bundled_onnx, wrapped, uint8_input=uint8_input, max_candidates=max_candidates)
    reference = run_example(example_binary, bundled_onnx, clip, tmp_path / "full")
    run = run_example(example_binary, wrapped, clip, tmp_path / "wrapped")
    assert reference.returncode == 0 and run.returncode == 0, run.stderr
    want = (tmp_path / "full" / "poses.jsonl").read_text().splitlines()
    got = (tmp_path / "wrapped" / "poses.jsonl").read_text().splitlines()
    assert len(got) == len(want) == NUM_FRAMES
    for index, (line, reference_line) in enumerate(zip(got, want)):
        poses, reference_poses = json.loads(line)["poses"], json.loads(reference_line)["poses"]
        assert len(poses) == len(reference_poses), f"frame {index}"
        for pose, reference_pose in zip(poses, reference_poses):
            np.testing.assert_allclose(pose["keypoints"], reference_pose["keypoints"], atol=1e-3)
            np.testing.assert_allclose(pose["box"], reference_pose["box"], atol=1e-3)


def test_compact_file_warns_when_candidates_were_dropped(example_binary: Path, bundled_onnx: Path, clip: Path,
                                                        tmp_path: Path) -> None:
    wrapped = tmp_path / "tiny.onnx"
    wrap_model(bundled_onnx, wrapped, uint8_input=False, max_candidates=5, floor=0.0)
    run = run_example(example_binary, wrapped, clip, tmp_path / "out")
    assert run.returncode == 0, run.stderr
    assert "candidates above the floor, 5 kept" in run.stderr
