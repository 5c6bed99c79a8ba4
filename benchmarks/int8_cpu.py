"""INT8 vs FP32 on ONNX Runtime CPU: which INT8 flavour this CPU runs fastest, and by how much.

    python benchmarks/int8_cpu.py [--weights W.pt | --model kapao_s] [--imgsz 640] [--rounds 20]
                                  [--calib DIR] [--calib-images 32] [--threads N] [--json F]
                                  [--spinning on|off|both] [--idle-ms 100]

Exports FP32 ONNX (fixed 1x3xSxS), calibrates once on real or synthetic scenes (all tensors, MinMax,
cached), then quantizes several flavours from the same ranges and times batch-1 inference
round-robin over FP32 and every flavour in one process (median ms, ratio vs FP32), once with ONNX
Runtime's default thread spinning and once with it off (`MODES` says how each is timed). The `cpu` flavour
is what `kapao-edge quantize --target cpu` writes (INT8 stem as space-to-depth, shared Concat/Resize
ranges, upsamples as expands, head convs as integer matmuls, conv kernels timed and chosen at
--threads); the others show what the choices are worth.
Target: INT8 (cpu flavour) >= 2x FP32. Random weights time the same as trained ones.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

# name -> how it is made. "library" rows go through kapao_edge (what `quantize --target X` writes);
# the others are quantize_static variants kept to show what each choice is worth.
FLAVOURS = {
    "cpu (kapao-edge --target cpu)": {"library": "cpu"},
    "cpu, float head convs": {"library": "cpu", "float_heads": True},
    "cpu, all convs on ConvSym (untuned)": {"library": "cpu", "untuned": True},
    "cpu, untuned, no shared ranges": {"library": "cpu", "untuned": True, "own_ranges": True},
    "cpu, float 6x6 stem (no s2d)": {"library": "cpu", "plain_stem": True},
    "naive: Q/DQ on Conv only, u8 act": {"activation": "QUInt8", "ops": ["Conv"], "extra": {"WeightSymmetric": True}},
    "QOperator, Conv only (QLinearConv)": {"activation": "QUInt8", "ops": ["Conv"], "format": "QOperator", "extra": {}},
    "tensorrt flavour on CPU": {"tensorrt": True},
}

# how each thread-spinning mode is timed (both interleave every variant round-robin)
MODES = {
    "on": "ONNX Runtime's default; {idle:.0f} ms idle before each call, so that no session's spinning "
          "workers steal the CPU from the next (as one model in a camera loop sees it)",
    "off": "workers sleep as soon as a run ends; back to back, no pause (each op's wake-ups are paid)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=None, help="checkpoint (default: a seeded random --model)")
    parser.add_argument("--model", default="kapao_s")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--calib", type=Path, default=None, help="calibration images (default: synthetic scenes)")
    parser.add_argument("--calib-images", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads (default: ORT's)")
    parser.add_argument("--only", default=None,
                        help="flavour names to time, separated by ';' (names contain commas; default: all)")
    parser.add_argument("--spinning", choices=["on", "off", "both"], default="both",
                        help="ORT worker-thread spinning: on (ORT's default) or off; both times each in turn")
    parser.add_argument("--idle-ms", type=float, default=100.0,
                        help="pause before each timed call with spinning on (lets the last run's workers go idle)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    import onnx
    import torch

    from kapao_edge.bench.stats import interleaved_ms
    from kapao_edge.calibration.cache import calibrate
    from kapao_edge.calibration.cpu_graph import tune_conv_kernels
    from kapao_edge.calibration.int8 import default_exclusions, preprocess_for_cpu, quantize_from_stats
    from kapao_edge.calibration.reader import CalibrationImages, InputSpec
    from kapao_edge.data.synth import generate_dataset
    from kapao_edge.export import export_onnx
    from kapao_edge.model import build_model, read_checkpoint

    torch.manual_seed(0)
    model = read_checkpoint(args.weights).model if args.weights else build_model(args.model)
    chosen = None if args.only is None else {name.strip() for name in args.only.split(";")}
    unknown = sorted(chosen - set(FLAVOURS)) if chosen else []
    if unknown:
        parser.error(f"--only: unknown flavour(s) {unknown}; choose from {list(FLAVOURS)}")
    flavours = {k: v for k, v in FLAVOURS.items() if chosen is None or k in chosen}
    with tempfile.TemporaryDirectory(prefix="kapao-int8-bench-") as tmp:
        work = Path(tmp)
        fp32 = work / "fp32.onnx"
        export_onnx(model, fp32, imgsz=args.imgsz, dynamic="none")
        pre = work / "fp32_pre.onnx"
        note = preprocess_for_cpu(fp32, pre)
        plain_pre = work / "fp32_pre_plain_stem.onnx"  # the stem left a 6x6 stride-2 conv (float)
        needs_plain_stem = any(flavour.get("plain_stem") for flavour in flavours.values())
        if needs_plain_stem:
            preprocess_for_cpu(fp32, plain_pre, space_to_depth=False)
        calib = args.calib
        if calib is None:
            calib = generate_dataset(work / "synth", args.calib_images, 0, "coco", args.imgsz, workers=1).parent / "images"
        images = CalibrationImages(calib, InputSpec.from_onnx(pre), count=args.calib_images, seed=0)
        started = time.perf_counter()
        stats = calibrate(pre, images, op_types=None, cache_dir=work / "cache")
        calib_seconds = time.perf_counter() - started
        plain_stats = calibrate(plain_pre, images, op_types=None, cache_dir=work / "cache") if needs_plain_stem else None
        pre_model = onnx.load(str(pre))
        excluded = default_exclusions(pre_model, "tensorrt")
        batch_shape = (1, 3, images.spec.height, images.spec.width)
        paths = {"fp32": pre}
        for name, flavour in flavours.items():
            path = work / f"{len(paths)}.onnx"
            if flavour.get("library"):
                source, source_stats = (plain_pre, plain_stats) if flavour.get("plain_stem") else (pre, stats)
                nodes = default_exclusions(onnx.load(str(source)), flavour["library"])
                quantized = quantize_from_stats(source, source_stats, target=flavour["library"], nodes_to_exclude=nodes,
                                                share_ranges=not flavour.get("own_ranges"),
                                                integer_float_heads=not flavour.get("float_heads"))
                if not flavour.get("untuned"):  # as `quantize --target cpu` does, timed at these threads
                    tune_conv_kernels(quantized, tuple(batch_shape), threads=args.threads)
                onnx.save(quantized, str(path))
            elif flavour.get("tensorrt"):
                onnx.save(quantize_from_stats(fp32, stats_for(fp32, images, work, calibrate), target="tensorrt",
                                              nodes_to_exclude=default_exclusions(onnx.load(str(fp32)))), str(path))
            else:
                quantize_flavour(pre, path, stats, flavour, excluded)
            paths[name] = path
        batch = next(iter(images.batches()))  # (1, 3, S, S)
        results = {}
        for mode in MODES if args.spinning == "both" else [args.spinning]:
            sessions = {name: session(path, args.threads, spinning=mode == "on") for name, path in paths.items()}
            runs = {name: (lambda run=run: run(batch)) for name, run in sessions.items()}
            samples = interleaved_ms(runs, rounds=args.rounds, warmup=args.warmup,
                                     idle_s=args.idle_ms / 1e3 if mode == "on" else 0.0)
            reference = sessions["fp32"](batch)
            errors = {name: float(np.abs(run(batch)[..., 4] - reference[..., 4]).max()) for name, run in sessions.items()}
            results[mode] = (samples, errors)
            del sessions, runs

    label = args.weights.name if args.weights else args.model
    print(f"{label} {args.imgsz}x{args.imgsz} batch 1, threads {args.threads or 'ORT default'}, {args.rounds} interleaved rounds")
    print(f"{note}; calibration {calib_seconds:.1f} s on {len(images.paths)} images")
    cpu_name = next(iter(FLAVOURS))
    report, headline = {}, []
    for mode, (samples, errors) in results.items():
        medians = {name: float(np.median(values)) for name, values in samples.items()}
        baseline = medians["fp32"]
        print(f"\nthread spinning {mode}: {MODES[mode].format(idle=args.idle_ms)}")
        print(f"{'variant':<36}{'median ms':>10}{'p90 ms':>10}{'vs fp32':>9}{'max |dobj|':>12}")
        for name, values in samples.items():
            p90 = float(np.percentile(values, 90))
            print(f"{name:<36}{medians[name]:>10.1f}{p90:>10.1f}{baseline / medians[name]:>8.2f}x{errors[name]:>12.4f}")
        if cpu_name in medians:
            headline.append(f"{baseline / medians[cpu_name]:.2f}x with spinning {mode}")
        report[f"spinning_{mode}"] = {"median_ms": medians, "max_objectness_error": errors}
    if headline:
        print(f"\nINT8 ({cpu_name}) vs FP32: {', '.join(headline)} (target >= 2x)")
    if args.json:
        from kapao_edge.utils.io import write_text_atomic

        write_text_atomic(args.json, json.dumps({**report, "idle_ms": args.idle_ms}, indent=2))


def stats_for(model_path, images, work, calibrate):
    """Conv-only ranges of the unprocessed export, as `--target tensorrt` calibrates."""
    return calibrate(model_path, images, op_types=["Conv"], cache_dir=work / "cache")


def quantize_flavour(source: Path, out: Path, stats, flavour: dict, excluded: list[str]) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from kapao_edge.calibration.cache import ort_method
    from kapao_edge.calibration.int8 import quiet_ort_logs

    with quiet_ort_logs():
        quantize_static(
            str(source), str(out), None,
            quant_format=QuantFormat.QOperator if flavour.get("format") == "QOperator" else QuantFormat.QDQ,
            op_types_to_quantize=flavour["ops"], per_channel=True, reduce_range=flavour.get("reduce_range", False),
            activation_type=getattr(QuantType, flavour["activation"]), weight_type=QuantType.QInt8,
            nodes_to_exclude=excluded, calibrate_method=ort_method(stats.method), extra_options=dict(flavour["extra"]),
            calibration_cache_path=str(stats.ranges_path),
        )


def session(path: Path, threads: int | None, *, spinning: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return lambda batch: sess.run(None, {name: batch})[0]  # (B, N, No)


if __name__ == "__main__":
    main()
