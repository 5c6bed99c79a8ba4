"""The SDK's letterbox (kapao/letterbox.hpp geometry + kapao/opencv.hpp pixels) against the official
letterbox fixtures and Python's kapao_edge.data.letterbox.

Needs OpenCV C++: `.ci/cpp-sdk` builds kapao_letterbox_tool and sets KAPAO_LETTERBOX_TOOL.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from kapao_edge.data.letterbox import letterbox

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tool() -> Path:
    path = os.environ.get("KAPAO_LETTERBOX_TOOL")
    if not path:
        pytest.skip("KAPAO_LETTERBOX_TOOL is not set (.ci/cpp-sdk builds the tool and sets it)")
    return Path(path)


def cpp_letterbox(tool: Path, image: np.ndarray, hw: tuple[int, int], stride: int, auto: bool, tmp: Path):
    source, target = tmp / "in.png", tmp / "out.png"
    assert cv2.imwrite(str(source), image)
    run = subprocess.run([str(tool), str(source), str(target), str(hw[0]), str(hw[1]), str(stride), str(int(auto))],
                         check=True, capture_output=True, text=True)
    fields = run.stdout.split()  # ratio R pad X Y input H W
    return cv2.imread(str(target), cv2.IMREAD_UNCHANGED), float(fields[1]), (float(fields[3]), float(fields[4]))


def test_letterbox_equals_the_official_fixtures(tool: Path, reference_dir: Path, tmp_path: Path) -> None:
    cases = json.loads((reference_dir / "letterbox_cases.json").read_text())
    with np.load(reference_dir / "letterbox_cases.npz") as arrays:
        for case in cases:
            image, want = arrays[f"{case['case']}_in"], arrays[f"{case['case']}_out"]
            size = (case["imgsz"], case["imgsz"])
            got, ratio, pad = cpp_letterbox(tool, image, size, case["stride"], case["auto"], tmp_path)
            assert got.shape == want.shape == (*case["out_hw"], 3), case["case"]
            np.testing.assert_array_equal(got, want, err_msg=case["case"])
            assert ratio == pytest.approx(case["ratio"][0], rel=1e-15)
            assert pad == tuple(case["pad"]), case["case"]


@pytest.mark.parametrize("hw", [(480, 640), (333, 517), (700, 500), (50, 1000), (641, 479), (1080, 1920)])
@pytest.mark.parametrize("auto", [True, False])
def test_letterbox_equals_python(tool: Path, tmp_path: Path, hw: tuple[int, int], auto: bool) -> None:
    image = np.random.default_rng(hw[0] * 7 + hw[1]).integers(0, 256, (*hw, 3), dtype=np.uint8)
    for size in [(640, 640), (448, 448), (384, 640)]:
        want, (ratio, _), pad = letterbox(image, size, stride=64, auto=auto)
        got, cpp_ratio, cpp_pad = cpp_letterbox(tool, image, size, 64, auto, tmp_path)
        np.testing.assert_array_equal(got, want)
        assert cpp_ratio == ratio and cpp_pad == pad
