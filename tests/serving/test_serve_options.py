"""`kapao-edge serve` refuses bad options in one line, exit 2, before loading the model or starting Triton."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "kapao_edge.cli", "serve", *args], capture_output=True, text=True,
                          timeout=120)


def test_port_in_use(serving_available):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _serve("--weights", "bundled", "--http-port", str(port))
    assert result.returncode == 2
    assert f"--http-port {port}" in result.stderr and "already in use" in result.stderr


@pytest.mark.parametrize("args, message", [
    (["--max-batch", "0"], "--max-batch must be >= 1"),
    (["--instances", "0"], "--instances must be >= 1"),
    (["--http-port", "8100", "--grpc-port", "8100"], "must differ"),
    (["--grpc-port", "70000"], "--grpc-port must be a port number"),
])
def test_bad_options(serving_available, args, message):
    result = _serve("--weights", "bundled", *args)
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_needs_exactly_one_model(serving_available):
    from kapao_edge.serving.process import free_ports

    ports = [str(port) for port in free_ports(3)]
    result = _serve("--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2])
    assert result.returncode == 2 and "exactly one of --weights" in result.stderr
