"""SIGTERM under load: in-flight requests are answered or refused, none hangs, and the server exits 0."""

from __future__ import annotations

import signal
import threading
import time


def test_sigterm_under_load_stops_cleanly(start_serve, sample_frames):
    from kapao_edge.serving import Client
    from kapao_edge.serving.client import ServerError
    from kapao_edge.serving.server import port_free

    server = start_serve("--exit-timeout", "3")
    frame = next(iter(sample_frames.values()))
    client = Client(server.http_url, timeout_s=120)  # long: a hanging request must show up as one
    records: list[tuple[str, float]] = []
    lock = threading.Lock()
    stopping = threading.Event()

    def camera() -> None:
        while True:
            start = time.monotonic()
            try:
                outcome = "answered" if len(client(frame)) > 0 else "empty"
            except (ServerError, OSError) as exc:
                outcome = f"refused: {exc}"
            with lock:
                records.append((outcome, time.monotonic() - start))
            if outcome != "answered" or (stopping.is_set() and time.monotonic() - stopped_at > 30):
                return

    threads = [threading.Thread(target=camera, daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)  # requests in flight on every thread
    stopped_at = time.monotonic()
    stopping.set()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=60)
    for thread in threads:
        thread.join(timeout=30)
    client.close()
    log = server.log.read_text()
    assert code == 0, log[-3000:]
    assert "stopped" in log
    assert not any(thread.is_alive() for thread in threads), "a request hung after the server stopped"
    answered = [seconds for outcome, seconds in records if outcome == "answered"]
    refused = [outcome for outcome, _ in records if outcome.startswith("refused")]
    assert answered and len(refused) == len(threads)  # each camera: answers, then one refusal at the end
    # refused in words: the drain's "shutting down" answer, or the connection closing once Triton stopped
    assert all("shutting down" in outcome or "onnect" in outcome or "closed" in outcome.lower() for outcome in refused), refused
    assert all(outcome in ("answered",) or outcome.startswith("refused") for outcome, _ in records)
    assert max(seconds for _, seconds in records) < 3 + 20  # bounded by --exit-timeout, not the client's 120 s
    assert all(port_free("127.0.0.1", port) for port in (server.http_port, server.grpc_port, server.metrics_port))
