"""C++ post-processor vs the NumPy reference: per fixture case and on a full 1280x1280 output.

    python benchmarks/postprocess.py [--repeats 200]

Prints median / p90 milliseconds per call (batch as given: 2 images for the fixtures, 1 for the
1280 output) and the speed-up. Targets: >= 30x on the heavy fixture cases, <= 1 ms median for the
full 1280 output at the official val thresholds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Callable

import numpy as np

from kapao_edge.postprocess import PostprocessConfig, cpp_available, postprocess

REPO_ROOT = Path(__file__).resolve().parents[1]
THRESHOLD_KEYS = ("conf_thres", "iou_thres", "conf_thres_kp", "iou_thres_kp", "conf_thres_kp_person",
                  "overwrite_tol")


def shared_reference() -> Path | None:
    for candidate in (os.environ.get("KAPAO_EDGE_SHARED"), REPO_ROOT.parent / "shared", REPO_ROOT / "shared"):
        if candidate and (Path(candidate) / "reference" / "postprocess_cases.npz").is_file():
            return Path(candidate) / "reference"
    return None


def timings_ms(call: Callable[[], object], repeats: int) -> np.ndarray:
    call()  # warm-up: caches, workspace growth
    samples = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter_ns()
        call()
        samples[i] = (time.perf_counter_ns() - start) / 1e6
    return samples


def full_1280_output(seed: int = 0, num_keypoints: int = 17) -> np.ndarray:
    """(1, 102000, 57) float32 shaped like a trained model's output on a street scene.

    Background objectness is log-uniform in [1e-6, 3e-3] (a few percent of rows pass the val
    threshold 0.001); 12 people each produce ~30 overlapping person rows over three strides and
    ~8 keypoint-object rows per keypoint.
    """
    rng = np.random.default_rng(seed)
    size = 1280
    rows = 3 * sum((size // s) ** 2 for s in (8, 16, 32, 64))  # 102000
    num_classes = num_keypoints + 1
    pred = np.zeros((1, rows, 3 * num_keypoints + 6), np.float32)  # (1, N, No)
    view = pred[0]
    view[:, 0:2] = rng.uniform(0, size, (rows, 2))
    view[:, 2:4] = rng.uniform(8, 400, (rows, 2))
    view[:, 4] = 10 ** rng.uniform(-6, np.log10(3e-3), rows)
    view[:, 5 : 5 + num_classes] = rng.random((rows, num_classes)) ** 3
    view[:, 5 + num_classes :] = np.repeat(view[:, 0:2], num_keypoints, axis=1) + rng.normal(0, 40, (rows, 2 * num_keypoints))
    free = rng.permutation(rows)  # rows that clusters overwrite
    taken = 0
    for _ in range(12):
        cx, cy = rng.uniform(100, size - 100, 2)
        w, h = rng.uniform(60, 250), rng.uniform(150, 600)
        keypoints = np.stack([cx + rng.normal(0, w / 3, num_keypoints), cy + rng.normal(0, h / 3, num_keypoints)], 1)
        for _ in range(30):
            row = view[free[taken]]
            taken += 1
            row[:4] = cx + rng.normal(0, 5), cy + rng.normal(0, 5), w * rng.uniform(0.9, 1.1), h * rng.uniform(0.9, 1.1)
            row[4] = rng.uniform(0.3, 0.95)
            row[5 : 5 + num_classes] = rng.random(num_classes) * 0.05
            row[5] = rng.uniform(0.8, 1.0)
            row[5 + num_classes :] = (keypoints + rng.normal(0, 4, keypoints.shape)).reshape(-1)
        for k in range(num_keypoints):
            for _ in range(8):
                row = view[free[taken]]
                taken += 1
                side = 0.05 * size * rng.uniform(0.8, 1.2)
                row[:4] = keypoints[k, 0] + rng.normal(0, 3), keypoints[k, 1] + rng.normal(0, 3), side, side
                row[4] = rng.uniform(0.1, 0.9)
                row[5 : 5 + num_classes] = rng.random(num_classes) * 0.05
                row[6 + k] = rng.uniform(0.6, 1.0)
    return pred


def report(label: str, cpp_ms: np.ndarray, numpy_ms: np.ndarray) -> None:
    ratio = np.median(numpy_ms) / np.median(cpp_ms)
    print(f"{label:<34} {np.median(cpp_ms):8.3f} {np.percentile(cpp_ms, 90):8.3f} "
          f"{np.median(numpy_ms):9.3f} {np.percentile(numpy_ms, 90):9.3f} {ratio:8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed C++ calls per row (NumPy gets a fifth)")
    args = parser.parse_args()
    if not cpp_available():
        raise SystemExit("the C++ post-processor is not built: pip install -e . first")
    cpp_repeats, numpy_repeats = args.repeats, max(args.repeats // 5, 5)

    header = f"{'case':<34} {'C++ med':>8} {'C++ p90':>8} {'NumPy med':>9} {'NumPy p90':>9} {'speed-up':>9}"
    print(f"{os.cpu_count()} CPU(s); milliseconds per call")
    print(header)
    print("-" * len(header))
    reference = shared_reference()
    if reference is None:
        print("(fixture cases skipped: ../shared/reference not found)")
    else:
        cases = json.loads((reference / "postprocess_cases.json").read_text())
        with np.load(reference / "postprocess_cases.npz") as arrays:
            for case in cases:
                predictions = arrays[f"{case['case']}_pred"]
                config = PostprocessConfig(**{k: case[k] for k in THRESHOLD_KEYS}, compat="official")
                args_ = (predictions, case["input_hw"], case["original_hw"], config)
                label = (f"{case['case']} {case['dataset'][:5]} {case['input_hw'][0]}x{case['input_hw'][1]} "
                         f"c{case['conf_thres']} N={predictions.shape[1]}")
                report(label, timings_ms(lambda: postprocess(*args_, backend="cpp"), cpp_repeats),
                       timings_ms(lambda: postprocess(*args_, backend="numpy"), numpy_repeats))

    predictions = full_1280_output()
    print(f"full 1280x1280 output: {predictions.shape[1]} rows, "
          f"{int((predictions[0, :, 4] > 0.001).sum())} with obj > 0.001")
    for name, config in (("val", PostprocessConfig.official_val()), ("demo", PostprocessConfig.official_demo())):
        for compat in ("official", "default"):
            args_ = (predictions, (1280, 1280), (720, 1280), config.replace(compat=compat))
            poses = postprocess(*args_, backend="cpp")[0]
            report(f"1280 {name} {compat} ({len(poses)} poses)",
                   timings_ms(lambda: postprocess(*args_, backend="cpp"), cpp_repeats),
                   timings_ms(lambda: postprocess(*args_, backend="numpy"), numpy_repeats))
    half = predictions.astype(np.float16)
    args_ = (half, (1280, 1280), (720, 1280), PostprocessConfig.official_val(compat="official"))
    from kapao_edge.postprocess.cpp import postprocess_cpp

    fp16_ms = timings_ms(lambda: postprocess_cpp(*args_), cpp_repeats)
    print(f"{'1280 val official, float16 in place':<34} {np.median(fp16_ms):8.3f} {np.percentile(fp16_ms, 90):8.3f}")


if __name__ == "__main__":
    main()
