"""A real ``kapao-edge serve`` (Triton through PyTriton) on free loopback ports, started once per module.

The serving extra needs a virtualenv made from the system Python (see docs/serving.md); where
PyTriton or tritonclient is not importable, every test that needs a server skips and says why.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
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


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (bound together, so the kernel cannot hand one out twice)."""
    sockets = []
    try:
        for _ in range(count):
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.bind(("127.0.0.1", 0))
            sockets.append(probe)
        return [probe.getsockname()[1] for probe in sockets]
    finally:
        for probe in sockets:
            probe.close()


@dataclass
class Served:
    process: subprocess.Popen
    http_port: int
    grpc_port: int
    metrics_port: int
    log: Path

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self, timeout_s: float = 60.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout_s)


def start_server(tmp_path: Path, *extra: str, timeout_s: float = 180.0) -> Served:
    """``kapao-edge serve --weights bundled`` in a child process; returns once /v2/health/ready is 200."""
    http_port, grpc_port, metrics_port = free_ports(3)
    log = tmp_path / "serve.log"
    command = [sys.executable, "-m", "kapao_edge.cli", "serve", "--weights", "bundled",
               "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
               "--triton-log", str(tmp_path / "triton.log"), *extra]
    with open(log, "w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=dict(os.environ))
    served = Served(process, http_port, grpc_port, metrics_port, log)
    deadline = time.monotonic() + timeout_s
    while not served.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            pytest.fail(f"kapao-edge serve did not become ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return served


@pytest.fixture
def start_serve(serving_available, tmp_path):
    """``start_serve(*options)``: a server of the test's own, stopped (SIGTERM) after it unless already."""
    started: list[Served] = []

    def start(*extra: str) -> Served:
        started.append(start_server(tmp_path, *extra))
        return started[-1]

    yield start
    for served in started:
        served.stop()


@pytest.fixture(scope="module")
def server(serving_available, tmp_path_factory) -> Served:
    served = start_server(tmp_path_factory.mktemp("serve"))
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
