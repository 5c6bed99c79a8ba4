"""``kapao-edge serve``: the KAPAO model behind NVIDIA Triton Inference Server, bound through PyTriton.

Why PyTriton rather than a generated model repository: the served model is a ``PosePipeline`` (the
same letterbox, engine and C++ post-processor as a local run), so served poses equal local poses by
construction, and any engine kapao-edge opens (torch, ONNX Runtime, TensorRT) serves without a Triton
backend of its own. Triton itself still does the serving: dynamic batching across clients, model
instances, HTTP/gRPC, health and Prometheus metrics. ``export --triton-repo`` writes the standard
repository for a GPU Triton instead.
"""

from __future__ import annotations

import logging
import socket
import tempfile
import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kapao_edge.errors import InputError
from kapao_edge.serving import (
    DEFAULT_MAX_BATCH, DEFAULT_MAX_FRAME_SIDE, DEFAULT_MAX_POSES, DEFAULT_QUEUE_DELAY_US, MODEL_NAME, protocol,
)

SERVE_NEEDED = (
    "serving needs NVIDIA PyTriton and the Triton client ({missing} is not importable): "
    'pip install -e ".[serve]" in a virtualenv made from the system Python (/usr/bin/python3.11 on '
    "Debian/Ubuntu), because Triton's Python-backend stub loads the system libpython"
)


def require_serving() -> None:
    """Fail in one line, exit 2, when the optional serving dependencies are missing."""
    for module in ("pytriton.triton", "tritonclient.http", "tritonclient.grpc"):
        try:
            __import__(module)
        except ImportError:
            raise InputError(SERVE_NEEDED.format(missing=module.split(".")[0])) from None


@dataclass(frozen=True)
class ServeConfig:
    """Where and how Triton serves. ``max_batch`` 1 turns dynamic batching off."""

    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    model_name: str = MODEL_NAME
    max_batch: int = DEFAULT_MAX_BATCH
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    instances: int = 1
    max_poses: int = DEFAULT_MAX_POSES
    max_frame_side: int = DEFAULT_MAX_FRAME_SIDE
    exit_timeout_s: int = 5
    log_file: Path | None = None

    def check(self) -> None:
        for name, value, low in (("--max-batch", self.max_batch, 1), ("--instances", self.instances, 1),
                                 ("--max-poses", self.max_poses, 1), ("--max-frame-side", self.max_frame_side, 64),
                                 ("--queue-delay-us", self.queue_delay_us, 0), ("--exit-timeout", self.exit_timeout_s, 0)):
            if value < low:
                raise InputError(f"{name} must be >= {low}, got {value}")
        ports = {"--http-port": self.http_port, "--grpc-port": self.grpc_port, "--metrics-port": self.metrics_port}
        for name, port in ports.items():
            if not 1 <= port <= 65535:
                raise InputError(f"{name} must be a port number 1-65535, got {port}")
        if len(set(ports.values())) != len(ports):
            raise InputError(f"--http-port, --grpc-port and --metrics-port must differ, got {sorted(ports.values())}")
        for name, port in ports.items():
            if not port_free(self.host, port):
                raise InputError(f"{name} {port}: {self.host}:{port} is already in use; choose another port")

    @property
    def http_url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.http_port}"


def _url_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


class Drain:
    """Shutdown in two steps: refuse new requests (each gets a 'shutting down' error at once), wait for
    the ones being computed, then stop Triton, so nothing is cut off mid-computation."""

    def __init__(self) -> None:
        self.closing = threading.Event()
        self._busy = 0
        self._idle = threading.Condition()

    def enter(self) -> bool:
        with self._idle:
            if self.closing.is_set():
                return False
            self._busy += 1
            return True

    def leave(self) -> None:
        with self._idle:
            self._busy -= 1
            self._idle.notify_all()

    def close(self, timeout_s: float) -> bool:
        """Refuse from now on; True once nothing is being computed (False after ``timeout_s``)."""
        self.closing.set()
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout=timeout_s)


SHUTTING_DOWN = "the server is shutting down: send this frame to another server"


class FrameServer:
    """One model instance: Triton's batch of requests -> one answer per request, frame by frame.

    Frames are checked one by one and grouped by shape, so a bad frame gets its own error while the
    frames batched with it are served; a pipeline failure fails only its group.
    """

    def __init__(self, pipeline: Any, config: ServeConfig, drain: Drain | None = None) -> None:
        self.pipeline = pipeline
        self.config = config
        self.drain = drain or Drain()
        self.num_keypoints = pipeline.preset.num_keypoints
        self.lock = threading.Lock()  # one pipeline, one call at a time (Triton may reuse a thread per instance)

    def check(self, frame: np.ndarray) -> str | None:
        """Why a frame cannot be served, or None. Triton itself refuses wrong dtypes and ranks."""
        height, width = int(frame.shape[0]), int(frame.shape[1])
        if height == 0 or width == 0:
            return f"empty frame {height}x{width}: send an H x W x 3 uint8 BGR image"
        limit = self.config.max_frame_side
        if max(height, width) > limit:
            return (f"frame {height}x{width} is larger than this server's limit of {limit} pixels a side "
                    "(kapao-edge serve --max-frame-side): downscale it before sending")
        return None

    def __call__(self, requests: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        if not self.drain.enter():
            return [protocol.stack([self._error(SHUTTING_DOWN)] * len(request[protocol.INPUT])) for request in requests]
        try:
            return self._serve(requests)
        finally:
            self.drain.leave()

    def _serve(self, requests: Sequence[Any]) -> list[dict[str, np.ndarray]]:
        answers: list[list[protocol.Encoded | None]] = []
        groups: dict[tuple[int, ...], list[tuple[int, int, np.ndarray]]] = defaultdict(list)
        for r, request in enumerate(requests):
            frames = request[protocol.INPUT]  # (B, H, W, 3) uint8
            answers.append([None] * len(frames))
            for f, frame in enumerate(frames):
                problem = self.check(frame)
                if problem is not None:
                    answers[r][f] = self._error(problem)
                else:
                    groups[frame.shape].append((r, f, frame))
        for items in groups.values():
            for start in range(0, len(items), self.config.max_batch):
                chunk = items[start:start + self.config.max_batch]
                try:
                    with self.lock:
                        results = self.pipeline.run_batch([frame for _, _, frame in chunk])
                    encoded = [protocol.encode(result.poses, result.letterbox, self.config.max_poses, self.num_keypoints)
                               for result in results]
                except Exception as exc:  # noqa: BLE001 - the frame's answer says why; the server keeps serving
                    logging.getLogger(__name__).exception("inference failed")
                    encoded = [self._error(f"inference failed: {exc}")] * len(chunk)
                for (r, f, _), answer in zip(chunk, encoded):
                    answers[r][f] = answer
        return [protocol.stack(items) for items in answers]  # type: ignore[arg-type]

    def _error(self, message: str) -> protocol.Encoded:
        return protocol.encode_error(message, self.config.max_poses, self.num_keypoints)


def tensors(num_keypoints: int, max_poses: int):
    """The model's inputs and outputs as PyTriton tensors (shapes without the batch dimension)."""
    from pytriton.model_config import Tensor

    inputs = [Tensor(name=protocol.INPUT, dtype=np.uint8, shape=(-1, -1, 3))]
    outputs = [
        Tensor(name="keypoints", dtype=np.float32, shape=(max_poses, num_keypoints, 3)),
        Tensor(name="boxes", dtype=np.float32, shape=(max_poses, 4)),
        Tensor(name="scores", dtype=np.float32, shape=(max_poses,)),
        Tensor(name="count", dtype=np.int32, shape=(1,)),
        Tensor(name="letterbox", dtype=np.float64, shape=(6,)),
        Tensor(name="error", dtype=bytes, shape=(1,)),
    ]
    return inputs, outputs


def _stub_pids(triton: Any) -> list[int]:
    """Pids of this server's Python-backend stubs (tritonserver's children), where /proc tells."""
    try:
        server_pid = int(triton._triton_server._tritonserver_running_cmd.pid)  # PyTriton 0.7.0 internals
    except (AttributeError, TypeError, ValueError):
        return []
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])  # the field after "(comm) state"
        except (OSError, IndexError, ValueError):
            continue
        if parent == server_pid:
            pids.append(int(stat.parent.name))
    return pids


def _end_orphans(pids: list[int], grace_s: float = 2.0) -> None:
    """A stub that outlives its tritonserver (seen when Triton stops mid-request) holds memory forever:
    end those, by pid, after checking the pid is still a stub."""
    import os
    import signal
    import time

    deadline = time.monotonic() + grace_s
    for pid in pids:
        while time.monotonic() < deadline and _is_stub(pid):
            time.sleep(0.1)
        if _is_stub(pid):
            logging.getLogger(__name__).warning("ending orphaned Triton Python-backend stub pid %d", pid)
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _is_stub(pid: int) -> bool:
    try:
        return b"triton_python_backend_stub" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


class Server:
    """Triton with the pipelines bound as one model (one instance per pipeline); ``start``, ``stop``."""

    def __init__(self, pipelines: Sequence[Any], config: ServeConfig) -> None:
        require_serving()
        config.check()
        if not pipelines:
            raise InputError("serving needs at least one pipeline")
        self.pipelines = list(pipelines)
        self.config = config
        self.triton: Any = None
        self.drain = Drain()
        self.log_file = config.log_file or Path(tempfile.mkdtemp(prefix="kapao-serve-")) / "triton.log"

    def start(self) -> None:
        from pytriton.model_config import DynamicBatcher, ModelConfig
        from pytriton.triton import Triton, TritonConfig, TritonLifecyclePolicy

        config = self.config
        for pipeline in self.pipelines:  # first-call costs (allocations, C++ post-processor) before clients
            pipeline(np.zeros((480, 640, 3), np.uint8))
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        triton_config = TritonConfig(
            http_address=config.host, http_port=config.http_port,
            grpc_address=config.host, grpc_port=config.grpc_port,
            allow_metrics=True, metrics_address=config.host, metrics_port=config.metrics_port,
            exit_timeout_secs=config.exit_timeout_s, strict_readiness=True, log_verbose=0, log_file=self.log_file,
        )
        inputs, outputs = tensors(self.pipelines[0].preset.num_keypoints, config.max_poses)
        model_config = ModelConfig(
            batching=True, max_batch_size=config.max_batch,
            batcher=DynamicBatcher(max_queue_delay_microseconds=config.queue_delay_us),
        )
        # The model goes into a local repository that Triton loads at start-up, so /v2/health/ready (strict
        # readiness) answers 200 only once the model can serve, never in a window before it is loaded.
        policy = TritonLifecyclePolicy(launch_triton_on_startup=False, local_model_store=True)
        self.triton = Triton(config=triton_config, triton_lifecycle_policy=policy)
        try:
            self.triton.bind(
                model_name=config.model_name,
                infer_func=[FrameServer(pipeline, config, self.drain) for pipeline in self.pipelines],
                inputs=inputs, outputs=outputs, config=model_config, strict=True,
            )
            self.triton.run()
        except Exception as exc:
            self.stop()
            raise InputError(f"Triton did not start ({exc}); its log: {self.log_file}") from None

    def is_alive(self) -> bool:
        return self.triton is not None and self.triton.is_alive()

    def stop(self) -> None:
        """Refuse new requests, finish the ones being computed (up to ``exit_timeout_s``), stop Triton."""
        if self.triton is not None:
            self.drain.close(self.config.exit_timeout_s)
            stubs = _stub_pids(self.triton)
            self.triton.stop()
            _end_orphans(stubs)
            self.triton = None

    def wait(self, stop: threading.Event, *, poll_s: float = 0.5,
             on_dead: Callable[[], None] | None = None) -> None:
        """Block until ``stop`` is set (a signal handler sets it) or Triton dies."""
        while not stop.wait(poll_s):
            if not self.is_alive():
                if on_dead is not None:
                    on_dead()
                return

    def __enter__(self) -> Server:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
