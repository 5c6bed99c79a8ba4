"""``kapao-edge serve`` as a child process on free loopback ports: for tests, load tests and scripts."""

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

from kapao_edge.errors import InputError


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
class ServeProcess:
    process: subprocess.Popen
    http_port: int
    grpc_port: int
    metrics_port: int
    log: Path  # the command's stdout and stderr; Triton's own log sits beside it

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

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            return response.read().decode()

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then the exit code (SIGKILL after ``timeout_s``: a stop that hangs is reported as -9)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start(folder: str | os.PathLike, *options: str, weights: str | None = "bundled", timeout_s: float = 180.0) -> ServeProcess:
    """Start ``kapao-edge serve --weights W OPTIONS`` with this Python (``weights=None``: the options
    name the model, e.g. ``--engine F``); return once it answers ready."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    http_port, grpc_port, metrics_port = free_ports(3)
    log = folder / "serve.log"
    model = ["--weights", weights] if weights is not None else []
    command = [sys.executable, "-m", "kapao_edge.cli", "serve", *model,
               "--http-port", str(http_port), "--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port),
               "--triton-log", str(folder / "triton.log"), *options]
    with open(log, "w") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    served = ServeProcess(process, http_port, grpc_port, metrics_port, log)
    deadline = time.monotonic() + timeout_s
    while not served.ready():
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise InputError(f"kapao-edge serve did not become ready; its output ({log}):\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return served
