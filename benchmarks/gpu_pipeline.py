"""GPU pipeline: network alone vs. the old path vs. the GPU-resident path, side by side in one run.

For kapao_s (random weights) at 640 and 1280 px, batch 1 and 8, on one CUDA device:
- network: FP16 channels-last forward replayed from a CUDA graph, device-resident input (the floor);
- old path: host letterbox to float, full (B, N, No) output copied back, FP32 eager, no overlap
  (the engine as it was before the GPU-resident work);
- new path: FP16 channels-last CUDA graph, uint8 frames letterboxed on the device, top-K candidates
  back (``DeployModel``), C++ post-processing; latency one batch at a time and pipelined throughput
  (``PosePipeline.map``).
Device stages are timed with CUDA events; end-to-end figures with the wall clock after a synchronise.
Prints one table and writes JSON (``--json``). Runs on the CPU too (``--device cpu``) to test the script.

    python benchmarks/gpu_pipeline.py --device cuda --iters 50 --json gpu_pipeline.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from typing import Any, Callable

import numpy as np


def _median_ms(run: Callable[[], Any], iters: int, warmup: int, sync: Callable[[], None]) -> float:
    for _ in range(warmup):
        run()
    sync()
    samples = []
    for _ in range(iters):
        start = time.perf_counter()
        run()
        sync()
        samples.append(1e3 * (time.perf_counter() - start))
    return statistics.median(samples)


def network_only_ms(model: Any, batch: int, size: int, device: str, iters: int, warmup: int) -> float:
    """The floor: FP16 channels-last network + decode from a CUDA graph on a device-resident input."""
    import torch

    from kapao_edge.engines.torch_backend import TorchEngine
    from kapao_edge.io_options import IoOptions

    with TorchEngine(model, device=device, precision="fp16" if device != "cpu" else "fp32", io=IoOptions()) as engine:
        images = np.random.default_rng(0).random((batch, 3, size, size), dtype=np.float32)
        buffers = engine._buffers("file", images.shape, images.dtype)  # noqa: SLF001 - the captured graph itself
        buffers.device_input.copy_(torch.from_numpy(images))
        if buffers.graph is not None:
            run = buffers.graph.replay
        else:
            def run() -> None:
                with torch.inference_mode():
                    engine.network(buffers.device_input)
        sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
        return _median_ms(run, iters, warmup, sync)


def path_ms(model: Any, frames: list[np.ndarray], size: int, device: str, *, new: bool, iters: int, warmup: int) -> dict[str, Any]:
    """End-to-end latency (one batch at a time) and pipelined throughput of one configuration."""
    import torch

    from kapao_edge.bench.runner import measure_pipelined_fps
    from kapao_edge.engines.torch_backend import TorchEngine
    from kapao_edge.io_options import DEFAULT_MAX_CANDIDATES, IoOptions
    from kapao_edge.runtime.pipeline import PosePipeline

    on_gpu = device != "cpu"
    if new:
        engine = TorchEngine(model, device=device, precision="fp16" if on_gpu else "fp32",
                             io=IoOptions("uint8", DEFAULT_MAX_CANDIDATES))
        preprocess = "device"
    else:
        engine = TorchEngine(model, device=device, precision="fp32", io=IoOptions(), cuda_graph=False, channels_last=False)
        preprocess = "host"
    sync = torch.cuda.synchronize if on_gpu else (lambda: None)
    with engine, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # random weights overflow K: expected here
        pipeline = PosePipeline(engine, imgsz=size, preprocess=preprocess)
        pipeline.preprocessor.auto = False  # the full size x size input
        latency = _median_ms(lambda: pipeline.run_batch(frames), iters, warmup, sync)
        prepared = pipeline.preprocess(frames)
        inferred = pipeline.infer(prepared, timed=True)
        stages = {k: round(1e3 * v, 3) for k, v in inferred.output.stages.items()}
        fps = measure_pipelined_fps(pipeline, frames, iters, warmup)
        return {
            "latency_ms": latency,
            "pipelined_fps": fps,
            "engine_stages_ms": stages,
            "h2d_bytes_per_frame": prepared.bytes_to_device // len(frames),
            "d2h_bytes_per_frame": inferred.bytes_to_host // len(frames),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--model", default="kapao_s")
    parser.add_argument("--sizes", default="640,1280")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    import torch

    from kapao_edge.bench.runner import synthetic_frames
    from kapao_edge.model import build_model

    if args.device != "cpu" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu to test the script")
    device_name = torch.cuda.get_device_name(0) if args.device != "cpu" else platform.processor() or "cpu"
    torch.manual_seed(0)
    model = build_model(args.model).eval()
    model.fuse()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        for batch in (int(b) for b in args.batches.split(",")):
            frames = synthetic_frames(batch, (480, 640), "coco")
            network = network_only_ms(model, batch, size, args.device, args.iters, args.warmup)
            old = path_ms(model, frames, size, args.device, new=False, iters=args.iters, warmup=args.warmup)
            new = path_ms(model, frames, size, args.device, new=True, iters=args.iters, warmup=args.warmup)
            rows.append({"size": size, "batch": batch, "network_ms": network, "old": old, "new": new})
            print(
                f"{args.model} {size}px b{batch}: network {network:.2f} ms | old {old['latency_ms']:.2f} ms "
                f"({old['pipelined_fps']:.0f} fps piped, {old['d2h_bytes_per_frame'] / 1e6:.2f} MB back) | "
                f"new {new['latency_ms']:.2f} ms = {new['latency_ms'] / network:.2f}x network "
                f"({new['pipelined_fps']:.0f} fps piped, {new['d2h_bytes_per_frame'] / 1e3:.1f} kB back)",
                flush=True,
            )
    report = {"device": device_name, "torch": torch.__version__, "model": args.model, "iters": args.iters, "rows": rows,
              "date": time.strftime("%Y-%m-%d")}
    if args.json:
        from kapao_edge.utils.io import write_text_atomic

        write_text_atomic(args.json, json.dumps(report, indent=2))
    print(f"device: {device_name}")


if __name__ == "__main__":
    main()
