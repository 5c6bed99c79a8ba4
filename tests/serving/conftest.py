"""A real ``kapao-edge serve`` (Triton through PyTriton) on free loopback ports, started once per module.

The serving extra needs a virtualenv made from the system Python (see docs/serving.md); where
PyTriton or tritonclient is not importable, every test that needs a server skips and says why.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _missing_serving() -> str | None:
    for module in ("pytriton.triton", "tritonclient.http", "tritonclient.grpc"):
        try:
            __import__(module)
        except Exception as exc:  # noqa: BLE001 - any import failure means "cannot serve here"
            return f"{module} is not importable ({type(exc).__name__}): serving tests need the [serve] extra in a system-Python virtualenv (.ci/serve)"
    return None


@pytest.fixture(scope="session")
def serving_available() -> None:
    reason = _missing_serving()
    if reason is not None:
        pytest.skip(reason)


def start_server(folder: Path, *options: str, weights: str | None = "bundled"):
    from kapao_edge.errors import InputError
    from kapao_edge.serving.process import start

    try:
        return start(folder, *options, weights=weights)
    except InputError as exc:
        pytest.fail(str(exc))


@pytest.fixture
def start_serve(serving_available, tmp_path):
    """``start_serve(*options)``: a server of the test's own, stopped (SIGTERM) after it unless already."""
    started = []

    def start(*extra: str, weights: str | None = "bundled"):
        started.append(start_server(tmp_path / str(len(started)), *extra, weights=weights))
        return started[-1]

    yield start
    for served in started:
        served.stop()


@pytest.fixture(scope="module")
def server(serving_available, tmp_path_factory):
    served = start_server(tmp_path_factory.mktemp("serve"), "--instances", "2")  # two instances: both serve
    yield served
    code = served.stop()
    assert code == 0, served.log.read_text()[-3000:]


@pytest.fixture(scope="session")
def sample_frames(shared_dir: Path) -> dict[str, "object"]:
    """The real COCO and CrowdPose sample images, decoded once."""
    import cv2

    paths = sorted((shared_dir / "data").glob("*/*.jpg"))
    assert paths, "no sample images under shared/data"
    return {path.name: cv2.imread(str(path)) for path in paths}
