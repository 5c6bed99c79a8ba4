"""The standalone C++ build (CMake, no Python) and its example program, checked against NumPy.

This is what a camera-app developer gets: the static library plus `kapao_print_poses`, reading a
raw predictions file (layout in cpp_postproc/examples/predictions_file.hpp).
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kapao_edge.postprocess import PostprocessConfig, postprocess

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def example_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cmake = shutil.which("cmake")
    if cmake is None or not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        pytest.skip("cmake and a C++ compiler are needed to build the standalone example")
    build = tmp_path_factory.mktemp("cpp-build")
    configure = [cmake, "-S", str(REPO_ROOT), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
                 "-DKAPAO_BUILD_PYTHON=OFF", "-DKAPAO_BUILD_TESTS=OFF", "-DKAPAO_BUILD_EXAMPLES=ON"]
    subprocess.run(configure, check=True, capture_output=True, text=True)
    subprocess.run([cmake, "--build", str(build), "--target", "kapao_print_poses", "-j", "2"],
                   check=True, capture_output=True, text=True)
    return build / "kapao_print_poses"


def write_predictions_file(path: Path, predictions: np.ndarray, input_hw, original_hws) -> None:
    """The example's binary layout: 'KPRD', version, dtype, B, N, No, input h/w, (h, w) per image, data."""
    batch, rows, outputs = predictions.shape
    dtype_code = {np.dtype(np.float32): 0, np.dtype(np.float16): 1}[predictions.dtype]
    header = b"KPRD" + struct.pack("<7I", 1, dtype_code, batch, rows, outputs, *input_hw)
    sizes = b"".join(struct.pack("<2I", *hw) for hw in original_hws)
    path.write_bytes(header + sizes + predictions.astype(predictions.dtype.newbyteorder("<")).tobytes())


def parse_poses(text: str, num_keypoints: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The example's printout -> one (keypoints (P, K, 3), boxes (P, 4), scores (P,)) per image."""
    images: list[tuple[list, list, list]] = []
    for line in text.splitlines():
        fields = line.split()
        if fields[0] == "image":
            images.append(([], [], []))
        elif fields[0] == "pose":
            images[-1][2].append(float(fields[3]))
            images[-1][1].append([float(v) for v in fields[5:9]])
            images[-1][0].append([])
        elif fields[0] == "kp":
            images[-1][0][-1].append([float(v) for v in fields[2:5]])
    return [
        (np.array(kps, np.float32).reshape(-1, num_keypoints, 3), np.array(boxes, np.float32).reshape(-1, 4),
         np.array(scores, np.float32))
        for kps, boxes, scores in images
    ]


def generated_predictions() -> np.ndarray:
    """A small realistic batch for machines without ../shared: two people and their keypoint objects."""
    rng = np.random.default_rng(3)
    pred = np.zeros((2, 600, 57), np.float32)  # (B, N, No)
    pred[:, :, 4] = rng.random((2, 600)) ** 6 * 0.01
    pred[:, :, :4] = rng.uniform(10, 300, (2, 600, 4))
    for b in range(2):
        for person, (cx, cy) in enumerate([(200.0, 260.0), (420.0, 300.0)]):
            keypoints = np.stack([cx + rng.normal(0, 30, 17), cy + rng.normal(0, 60, 17)], 1)  # (17, 2)
            for r in range(10):
                row = pred[b, 100 * person + r]
                row[:5] = cx + rng.normal(0, 3), cy + rng.normal(0, 3), 120, 300, rng.uniform(0.6, 0.95)
                row[5] = 0.95
                row[23:] = (keypoints + rng.normal(0, 2, (17, 2))).reshape(-1)
            for k in range(17):
                row = pred[b, 100 * person + 20 + k]
                row[:5] = keypoints[k, 0] + 3, keypoints[k, 1] - 2, 32, 32, rng.uniform(0.5, 0.9)
                row[6 + k] = 0.9
    return pred


def example_inputs(shared_root: Path | None, preset: str):
    """(predictions, input_hw, original_hws) from a fixture case with the preset's thresholds."""
    if shared_root is None:
        return generated_predictions(), (640, 640), [(480, 640), (720, 1280)]
    reference = shared_root / "reference"
    cases = json.loads((reference / "postprocess_cases.json").read_text())
    wanted = {"val": 0.001, "demo": 0.7}[preset]
    case = next(c for c in cases if c["conf_thres"] == wanted and c["input_hw"] == [1280, 1280])
    with np.load(reference / "postprocess_cases.npz") as arrays:
        predictions = arrays[f"{case['case']}_pred"]
    return predictions, tuple(case["input_hw"]), [tuple(case["original_hw"])] * predictions.shape[0]


@pytest.fixture(scope="module", params=["with-shared", "generated"])
def shared_root(request: pytest.FixtureRequest) -> Path | None:
    if request.param == "generated":
        return None
    return request.getfixturevalue("shared_dir")


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("compat", ["official", "default"])
@pytest.mark.parametrize("preset", ["val", "demo"])
def test_example_prints_the_numpy_reference_poses(
    example_binary: Path, shared_root: Path | None, tmp_path: Path, preset: str, compat: str, dtype: type
) -> None:
    predictions, input_hw, original_hws = example_inputs(shared_root, preset)
    predictions = predictions.astype(dtype)
    path = tmp_path / "predictions.kprd"
    write_predictions_file(path, predictions, input_hw, original_hws)

    run = subprocess.run([str(example_binary), str(path), "--preset", preset, "--compat", compat],
                         check=True, capture_output=True, text=True)
    num_keypoints = (predictions.shape[2] - 6) // 3
    printed = parse_poses(run.stdout, num_keypoints)

    config = {"val": PostprocessConfig.official_val, "demo": PostprocessConfig.official_demo}[preset](compat=compat)
    expected = postprocess(predictions.astype(np.float32), input_hw, original_hws, config, backend="numpy")
    assert len(printed) == len(expected)
    assert sum(len(poses) for poses in expected) > 0
    for (keypoints, boxes, scores), want in zip(printed, expected):
        np.testing.assert_array_equal(scores, want.scores)  # %.9g round-trips float32 exactly
        np.testing.assert_array_equal(boxes, want.boxes)
        np.testing.assert_array_equal(keypoints, want.keypoints)


def test_example_rejects_a_truncated_file(example_binary: Path, tmp_path: Path) -> None:
    path = tmp_path / "broken.kprd"
    write_predictions_file(path, generated_predictions(), (640, 640), [(480, 640)] * 2)
    path.write_bytes(path.read_bytes()[:-10])
    run = subprocess.run([str(example_binary), str(path)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "size does not match its header" in run.stderr
