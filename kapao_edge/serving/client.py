"""``Client``: poses from a ``kapao-edge serve`` (Triton) server, over HTTP or gRPC.

``Client("http://127.0.0.1:8000")(frame_bgr)`` returns the ``Poses`` a local ``PosePipeline`` would
return for the frame; ``RemotePipeline`` wraps a client so ``predict``'s stream and writers run on it.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any
from urllib.parse import urlparse

import numpy as np

from kapao_edge.errors import InputError, KapaoEdgeError
from kapao_edge.postprocess import Poses
from kapao_edge.serving import MODEL_NAME, protocol


class ServerError(KapaoEdgeError):
    """The server refused or failed one request; it keeps serving others."""


def parse_url(url: str) -> tuple[str, str]:
    """'http://host:port' or 'grpc://host:port' -> (protocol, 'host:port'); a bare host:port is HTTP."""
    text = str(url).strip()
    parsed = urlparse(text if "://" in text else f"http://{text}")
    if parsed.scheme not in ("http", "grpc") or not parsed.hostname or parsed.port is None:
        raise InputError(f"server URL must look like http://HOST:PORT or grpc://HOST:PORT, got {url!r}")
    return parsed.scheme, f"{parsed.hostname}:{parsed.port}"


class Client:
    """Sends original BGR frames to the served model; usable from any thread (one connection per thread:
    tritonclient's HTTP connections belong to the thread that made them)."""

    backend = "triton"  # what predict's summary line names
    _ids = itertools.count()
    _ids_lock = threading.Lock()

    def __init__(self, url: str, *, model_name: str = MODEL_NAME, timeout_s: float = 30.0,
                 check_ready: bool = True) -> None:
        from kapao_edge.serving.server import require_serving

        require_serving()
        self.url = url
        self.scheme, self.address = parse_url(url)
        self.model_name = model_name
        self.timeout_s = float(timeout_s)
        if self.scheme == "http":
            import tritonclient.http as triton
        else:
            import tritonclient.grpc as triton
        self._triton = triton
        self._local = threading.local()
        self._opened: list[Any] = []
        self._opened_lock = threading.Lock()
        self._keypoints: int | None = None
        if check_ready:
            self.wait_ready(0.0)

    @property
    def _client(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            if self.scheme == "http":
                connection = self._triton.InferenceServerClient(self.address, connection_timeout=self.timeout_s,
                                                                network_timeout=self.timeout_s)
            else:
                connection = self._triton.InferenceServerClient(self.address)
            self._local.connection = connection
            with self._opened_lock:
                self._opened.append(connection)
        return connection

    def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Return once the model answers ready; InputError naming the URL when it does not in time."""
        deadline = time.monotonic() + timeout_s
        reason = "not ready"
        while True:
            try:
                if self._client.is_server_ready() and self._client.is_model_ready(self.model_name):
                    return
                reason = f"no model {self.model_name!r} ready"
            except Exception as exc:  # noqa: BLE001 - connection refused, reset, timeout: all mean "not yet"
                reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            if time.monotonic() >= deadline:
                raise InputError(f"no KAPAO server ready at {self.url} ({reason}): start one with `kapao-edge serve`")
            time.sleep(0.2)

    @property
    def preset(self):
        """The keypoint preset of the served model (from its output shape)."""
        from kapao_edge.presets import preset_for_keypoints

        if self._keypoints is None:
            config = self._client.get_model_config(self.model_name)
            config = config.get("config", config) if isinstance(config, dict) else config.config
            outputs = config["output"] if isinstance(config, dict) else config.output
            for output in outputs:
                name = output["name"] if isinstance(output, dict) else output.name
                if name == "keypoints":
                    dims = output["dims"] if isinstance(output, dict) else output.dims
                    self._keypoints = int(dims[1])
            if self._keypoints is None:
                raise InputError(f"model {self.model_name!r} at {self.url} has no 'keypoints' output: "
                                 "not a model served by `kapao-edge serve`")
        return preset_for_keypoints(self._keypoints)

    def infer(self, frame_bgr: np.ndarray):
        """(poses, letterbox) of one frame; ServerError when the server refuses it."""
        frame = _check_frame(frame_bgr)
        batch = frame[None]  # (1, H, W, 3)
        triton = self._triton
        tensor = triton.InferInput(protocol.INPUT, list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch)
        if self.scheme == "http":
            wanted = [triton.InferRequestedOutput(name, binary_data=True) for name in protocol.OUTPUTS]
        else:
            wanted = [triton.InferRequestedOutput(name) for name in protocol.OUTPUTS]
        with Client._ids_lock:
            request_id = str(next(Client._ids))
        try:
            if self.scheme == "http":
                result = self._client.infer(self.model_name, [tensor], outputs=wanted, request_id=request_id)
            else:
                result = self._client.infer(self.model_name, [tensor], outputs=wanted, request_id=request_id,
                                            client_timeout=self.timeout_s)
        except Exception as exc:  # noqa: BLE001 - tritonclient raises its own types per protocol
            message = getattr(exc, "message", None)
            text = message() if callable(message) else str(exc)
            raise ServerError(f"{self.url}: {text}") from None
        response = result.get_response()
        answered = response.get("id") if isinstance(response, dict) else response.id
        if answered != request_id:  # never take another request's poses for this frame's
            raise ServerError(f"{self.url}: answer for request {answered!r} arrived for request {request_id!r}")
        outputs = {name: result.as_numpy(name) for name in protocol.OUTPUTS}
        poses, info, error = protocol.decode(outputs, 0, (int(frame.shape[0]), int(frame.shape[1])))
        if error:
            raise ServerError(f"{self.url}: {error}")
        return poses, info

    def __call__(self, frame_bgr: np.ndarray) -> Poses:
        return self.infer(frame_bgr)[0]

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            try:
                connection.close()
            except Exception:  # noqa: BLE001 - a connection of a finished thread may be gone already
                pass
        self._local = threading.local()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _check_frame(frame_bgr: Any) -> np.ndarray:
    """A frame the server takes: uint8 (H, W, 3) BGR; gray and BGRA converted as a local run would."""
    from kapao_edge.data.preprocess import as_bgr

    return np.ascontiguousarray(as_bgr(frame_bgr))  # (H, W, 3)


class RemotePipeline:
    """A ``PosePipeline`` look-alike for streams and ``predict``: frame -> ``PoseResult`` from a server."""

    def __init__(self, client: Client, *, tracker: Any = None) -> None:
        self.client = client
        self.preset = client.preset
        self.tracker = tracker

    def __call__(self, frame_bgr: np.ndarray):
        from kapao_edge.runtime.pipeline import PoseResult

        poses, info = self.client.infer(frame_bgr)
        if self.tracker is not None:  # streams call this in frame order, one frame at a time
            poses = poses.with_ids(self.tracker.update(poses))
        return PoseResult(poses=poses, letterbox=info)
