"""ONNX Runtime FP32 vs torch FP32 on this CPU, and what the export rewrites and ORT graph levels add.

    python benchmarks/engines.py [--model kapao_s] [--imgsz 640] [--rounds 30]

Exports the model twice (naive: as built, BatchNorm unfused, Focus and SPP as they are; rewritten:
BatchNorm fused, Focus -> 6x6 conv, SPP -> cascaded 3x3 pools), then times batch-1 inference
round-robin over every variant so all of them see the same machine state. Prints median ms per
variant and ratios against torch. ONNX Runtime sessions run with thread spinning off: spinning idle
workers would steal the CPU from whichever variant runs next and make the comparison meaningless. Target: ONNX Runtime (rewritten, ORT_ENABLE_ALL) >= 1.5x torch.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from kapao_edge.bench.stats import interleaved_ms
from kapao_edge.engines import load_engine
from kapao_edge.engines.torch_backend import TorchEngine
from kapao_edge.export import export_onnx
from kapao_edge.export.verify import sample_batch
from kapao_edge.model import build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="kapao_s")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for both (default: torch's)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args()

    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)  # on a loaded machine, OpenMP spin-barriers collapse with 2+
    threads = torch.get_num_threads()
    model = build_model(args.model).eval()
    shape = [1, 3, args.imgsz, args.imgsz]
    images = sample_batch(shape)  # (1, 3, S, S): a letterboxed procedural scene

    with tempfile.TemporaryDirectory() as tmp:
        rewritten = Path(tmp) / "rewritten.onnx"
        naive = Path(tmp) / "naive.onnx"
        exports = {}
        for path, rewrite in ((rewritten, True), (naive, False)):
            report = export_onnx(model, path, imgsz=args.imgsz, dynamic="batch+hw", rewrite=rewrite)
            exports[path.stem] = {"nodes": report.nodes_final, "max_rel_diff": report.max_rel_diff}
        variants = {
            "torch fp32 (fused)": TorchEngine(model.fuse()),
            "ort all, rewritten": load_engine(rewritten, threads=threads, graph_optimization="all", spinning=False),
            "ort basic, rewritten": load_engine(rewritten, threads=threads, graph_optimization="basic", spinning=False),
            "ort all, naive export": load_engine(naive, threads=threads, graph_optimization="all", spinning=False),
            "ort disabled, rewritten": load_engine(rewritten, threads=threads, graph_optimization="disable", spinning=False),
        }
        runs = {name: (lambda engine=engine: engine(images)) for name, engine in variants.items()}
        samples = interleaved_ms(runs, rounds=args.rounds, warmup=args.warmup)

    medians = {name: float(np.median(values)) for name, values in samples.items()}
    baseline = medians["torch fp32 (fused)"]
    print(f"{args.model} {args.imgsz}x{args.imgsz} batch 1, {threads} threads, {args.rounds} interleaved rounds")
    print(f"exports: {json.dumps(exports)}")
    print(f"{'variant':<26}{'median ms':>10}{'p90 ms':>10}{'vs torch':>10}")
    for name, values in samples.items():
        p90 = float(np.percentile(values, 90))
        print(f"{name:<26}{medians[name]:>10.1f}{p90:>10.1f}{baseline / medians[name]:>9.2f}x")
    speedup = baseline / medians["ort all, rewritten"]
    print(f"ONNX Runtime (rewritten, ALL) vs torch: {speedup:.2f}x (target >= 1.5x)")
    if args.json:
        from kapao_edge.utils.io import write_text_atomic

        write_text_atomic(args.json, json.dumps({"median_ms": medians, "exports": exports, "speedup": speedup}, indent=2))


if __name__ == "__main__":
    main()
