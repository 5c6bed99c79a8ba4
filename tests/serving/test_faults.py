"""Bad requests and vanishing clients get their own errors; the server stays healthy for everyone else."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest


def _raw_infer(server, array: np.ndarray, datatype: str = "UINT8"):
    """A request built by hand with tritonclient (no kapao-edge checks in the way)."""
    import tritonclient.http as http

    client = http.InferenceServerClient(f"127.0.0.1:{server.http_port}")
    tensor = http.InferInput("frames", list(array.shape), datatype)
    tensor.set_data_from_numpy(array)
    try:
        return client.infer("kapao", [tensor])
    finally:
        client.close()


def _still_serving(server, frame) -> None:
    from kapao_edge.serving import Client

    assert server.ready()
    assert server.process.poll() is None
    with Client(server.http_url) as client:
        assert len(client(frame)) > 0


@pytest.fixture(scope="module")
def person_frame(sample_frames):
    return next(iter(sample_frames.values()))


def test_wrong_dtype_is_refused_alone(server, person_frame):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="FP32.*UINT8"):
        _raw_infer(server, person_frame[None].astype(np.float32), "FP32")
    _still_serving(server, person_frame)


@pytest.mark.parametrize("shape", [(1, 64, 64, 4), (64, 64, 3), (1, 64, 64)])
def test_wrong_shape_is_refused_alone(server, person_frame, shape):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException, match="shape|batch"):
        _raw_infer(server, np.zeros(shape, np.uint8))
    _still_serving(server, person_frame)


def test_oversized_frame_gets_its_own_error(server, person_frame):
    from kapao_edge.serving.client import ServerError
    from kapao_edge.serving import Client

    with Client(server.http_url) as client, pytest.raises(ServerError, match="4097x64 is larger than .* 4096"):
        client(np.zeros((4097, 64, 3), np.uint8))
    _still_serving(server, person_frame)


def test_empty_frame(server, person_frame):
    """The client refuses it before sending; a hand-made zero-size request fails alone on the server."""
    from tritonclient.utils import InferenceServerException

    from kapao_edge.errors import InputError
    from kapao_edge.serving import Client

    with Client(server.http_url) as client, pytest.raises(InputError, match="non-empty"):
        client(np.zeros((0, 64, 3), np.uint8))
    with pytest.raises(InferenceServerException):
        _raw_infer(server, np.zeros((1, 0, 64, 3), np.uint8))
    _still_serving(server, person_frame)


def test_client_checks_frames_before_sending(server):
    from kapao_edge.errors import InputError
    from kapao_edge.serving import Client

    with Client(server.http_url) as client:
        with pytest.raises(InputError, match="uint8"):
            client(np.zeros((64, 64, 3), np.float32))
        with pytest.raises(InputError, match="shape"):
            client(np.zeros((64, 64, 5), np.uint8))


def test_bad_frames_do_not_fail_their_batch_mates(server, person_frame):
    """Good and bad requests at once (Triton batches what it can): every good one gets its poses."""
    from kapao_edge.serving import Client
    from kapao_edge.serving.client import ServerError

    client = Client(server.http_url)
    outcomes: list[tuple[str, object]] = []
    lock = threading.Lock()

    def camera(frame) -> None:
        for _ in range(3):
            try:
                result = ("ok", len(client(frame)))
            except ServerError as exc:
                result = ("error", str(exc))
            with lock:
                outcomes.append(result)

    bad = np.zeros((5000, 64, 3), np.uint8)
    threads = [threading.Thread(target=camera, args=(frame,)) for frame in [person_frame] * 4 + [bad] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    client.close()
    good = [value for kind, value in outcomes if kind == "ok"]
    errors = [value for kind, value in outcomes if kind == "error"]
    assert len(good) == 12 and all(count > 0 for count in good)
    assert len(errors) == 12 and all("larger than" in message for message in errors)


def _request_bytes(server, frame) -> tuple[bytes, bytes]:
    import tritonclient.http as http

    tensor = http.InferInput("frames", [1, *frame.shape], "UINT8")
    tensor.set_data_from_numpy(frame[None])
    body, json_size = http.InferenceServerClient.generate_request_body([tensor])
    head = (f"POST /v2/models/kapao/infer HTTP/1.1\r\nHost: 127.0.0.1:{server.http_port}\r\n"
            f"Content-Type: application/octet-stream\r\nInference-Header-Content-Length: {json_size}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head, body


def test_client_disconnecting_mid_request(server, person_frame):
    head, body = _request_bytes(server, person_frame)
    for sent in (len(body) // 2, len(body)):  # mid-upload, then before the answer comes back
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.http_port), timeout=10) as connection:
                connection.sendall(head + body[:sent])
    time.sleep(1.0)  # let the server notice and finish what it accepted
    _still_serving(server, person_frame)


def test_grpc_client_giving_up_mid_request(server, person_frame):
    import tritonclient.grpc as grpc
    from tritonclient.utils import InferenceServerException

    client = grpc.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    tensor = grpc.InferInput("frames", [1, *person_frame.shape], "UINT8")
    tensor.set_data_from_numpy(person_frame[None])
    with pytest.raises(InferenceServerException, match="(?i)deadline"):
        client.infer("kapao", [tensor], client_timeout=0.001)
    client.close()
    time.sleep(0.5)
    _still_serving(server, person_frame)
