"""Fixtures shared by the whole suite.

``../shared`` (reference fixtures and real COCO samples) sits beside a development checkout and in CI,
but not on users' machines: every test that needs it asks for a fixture below and skips without it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def _shared_dir() -> Path | None:
    candidates = [os.environ.get("KAPAO_EDGE_SHARED"), REPO_ROOT.parent / "shared", REPO_ROOT / "shared"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "reference").is_dir():
            return Path(candidate)
    return None


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = _shared_dir()
    if path is None:
        pytest.skip("../shared (reference fixtures and data samples) is not present")
    return path


@pytest.fixture(scope="session")
def reference_dir(shared_dir: Path) -> Path:
    return shared_dir / "reference"


@pytest.fixture(scope="session")
def coco_sample_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "coco-sample"


@pytest.fixture(scope="session")
def crowdpose_sample_dir(shared_dir: Path) -> Path:
    return shared_dir / "data" / "crowdpose-sample"
