"""N simulated cameras against `kapao-edge serve`: dynamic batching on and off, side by side.

    python benchmarks/serve_load.py [--cameras 8] [--fps 4] [--seconds 30] [--max-batch 8]
        [--queue-delay-us 2000] [--frame-size 640x480] [--weights bundled] [--protocol http]

Each configuration gets a fresh server (`kapao-edge serve` as a child process on free loopback
ports). Each camera is a thread with a fixed frame rate: at every tick it sends the next frame (the
real COCO/CrowdPose samples, resized to one camera resolution so requests can batch) and waits for
the answer; ticks that pass while a request is in flight are dropped, as a live camera drops frames.
A camera stops after ``fps * seconds`` ticks or ``seconds`` plus a grace period. Reported per
configuration: frames per second answered, p50/p99 latency (send -> poses), errors, dropped ticks,
lost requests (sent but neither answered nor failed: must be 0), answers whose request id was not
their own (must be 0), and Triton's mean batch size from its metrics. Batching on: ``--max-batch``
with ``--queue-delay-us``; off: max batch 1.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from kapao_edge.serving.process import start


@dataclass
class Camera:
    sent: int = 0
    answered: int = 0
    errors: int = 0
    dropped: int = 0
    mismatched: int = 0
    latencies: list[float] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def sample_frames(frame_wh: tuple[int, int]) -> list[np.ndarray]:
    shared = Path(os.environ.get("KAPAO_EDGE_SHARED", Path(__file__).resolve().parents[1].parent / "shared"))
    paths = sorted((shared / "data").glob("*/*.jpg"))
    if not paths:
        sys.exit(f"no sample images under {shared / 'data'}: set KAPAO_EDGE_SHARED")
    return [cv2.resize(cv2.imread(str(path)), frame_wh, interpolation=cv2.INTER_AREA) for path in paths]


def run_camera(index: int, client, frames: list[np.ndarray], fps: float, seconds: float, stats: Camera) -> None:
    from kapao_edge.serving.client import ServerError

    period = 1.0 / fps
    ticks = int(round(fps * seconds))
    begin = time.monotonic() + index * period / 8  # cameras are not in phase
    deadline = begin + seconds + 10.0
    tick = 0
    while tick < ticks and time.monotonic() < deadline:
        due = begin + tick * period
        now = time.monotonic()
        if now < due:
            time.sleep(due - now)
        frame = frames[(index + tick) % len(frames)]
        stats.sent += 1
        start_s = time.monotonic()
        try:
            client(frame)
            stats.answered += 1
            stats.latencies.append(time.monotonic() - start_s)
        except ServerError as exc:
            if "arrived for request" in str(exc):
                stats.mismatched += 1
            stats.errors += 1
            stats.messages.append(str(exc))
        tick += 1
        late = int((time.monotonic() - (begin + tick * period)) // period) + 1 if time.monotonic() > begin + tick * period else 0
        late = min(late, ticks - tick)
        stats.dropped += late  # ticks that passed while this request was in flight
        tick += late


def batch_size(metrics: str) -> float:
    def value(name: str) -> float:
        match = re.search(rf'^{name}{{model="kapao",version="1"}} ([0-9.e+]+)$', metrics, re.M)
        return float(match.group(1)) if match else float("nan")

    return value("nv_inference_count") / value("nv_inference_exec_count")


def run(label: str, options: list[str], args, frames: list[np.ndarray], folder: Path) -> dict:
    from kapao_edge.serving import Client

    served = start(folder / label, *options, "--instances", str(args.instances), weights=args.weights)
    try:
        url = served.http_url if args.protocol == "http" else served.grpc_url
        client = Client(url, timeout_s=120)
        client(frames[0])  # first request of each connection outside the measurement
        cameras = [Camera() for _ in range(args.cameras)]
        threads = [threading.Thread(target=run_camera, args=(i, client, frames, args.fps, args.seconds, cameras[i]))
                   for i in range(args.cameras)]
        begin = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - begin
        metrics = served.metrics()
        client.close()
    finally:
        code = served.stop()
    latencies = sorted(s for camera in cameras for s in camera.latencies)
    total = {key: sum(getattr(camera, key) for camera in cameras) for key in ("sent", "answered", "errors", "dropped", "mismatched")}
    return {
        "label": label, **total, "lost": total["sent"] - total["answered"] - total["errors"],
        "fps": total["answered"] / elapsed,
        "p50_ms": 1000 * statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)) if latencies else float("nan"),
        "batch": batch_size(metrics), "exit": code,
        "messages": sorted({m for camera in cameras for m in camera.messages})[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--fps", type=float, default=4.0, help="frames per second each camera sends")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--queue-delay-us", type=int, default=2000)
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--frame-size", default="640x480", help="WxH of every camera's frames")
    parser.add_argument("--weights", default="bundled")
    parser.add_argument("--protocol", choices=("http", "grpc"), default="http")
    args = parser.parse_args()
    width, height = (int(v) for v in args.frame_size.lower().split("x"))
    frames = sample_frames((width, height))
    configurations = [
        ("batching", ["--max-batch", str(args.max_batch), "--queue-delay-us", str(args.queue_delay_us)]),
        ("batch-1", ["--max-batch", "1"]),
    ]
    with tempfile.TemporaryDirectory(prefix="serve-load-") as folder:
        rows = [run(label, options, args, frames, Path(folder)) for label, options in configurations]
    print(f"{args.cameras} cameras x {args.fps:g} fps for {args.seconds:g} s, {width}x{height} frames, "
          f"{args.protocol}, load average {os.getloadavg()[0]:.2f}")
    header = f"{'config':<9} {'frames/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'sent':>5} {'answered':>8} {'errors':>6} " \
             f"{'dropped':>7} {'lost':>4} {'wrong id':>8} {'batch':>5} {'exit':>4}"
    print(header)
    for row in rows:
        print(f"{row['label']:<9} {row['fps']:>8.2f} {row['p50_ms']:>7.0f} {row['p99_ms']:>7.0f} {row['sent']:>5} "
              f"{row['answered']:>8} {row['errors']:>6} {row['dropped']:>7} {row['lost']:>4} {row['mismatched']:>8} "
              f"{row['batch']:>5.2f} {row['exit']:>4}")
        for message in row["messages"]:
            print(f"  error: {message}")
    on, off = rows
    print(f"batching / batch-1: {on['fps'] / off['fps']:.2f}x frames/s, p99 {on['p99_ms']:.0f} vs {off['p99_ms']:.0f} ms")


if __name__ == "__main__":
    main()
