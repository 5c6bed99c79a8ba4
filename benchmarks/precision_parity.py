"""AP parity of every precision and INT8 recipe against the torch reference, through the CLI.

    python benchmarks/precision_parity.py [--weights bundled] [--imgsz N] [--scene-size N] [--images 500]
                                          [--test-seed 11] [--calib-seed 12] [--work runs/precision]
                                          [--methods meanmax,minmax,entropy,percentile] [--no-auto]

Generates a held-out synthetic test set and a separate calibration set (seeds unused in training;
the calibration sample is --images of its scenes, `--exclude auto` measures on the rest),
exports FP32 ONNX, makes FP16 and the INT8 variants with `kapao-edge quantize` (tensorrt target for
each calibration method, with the default exclusions and with `--exclude auto`; cpu target), then
runs one `kapao-edge parity --engines ...` over all of them and prints its table. Every command is
echoed, so any figure can be reproduced by hand. Files already made in --work are reused.
Targets (issue acceptance): |ΔAP| FP32 <= 0.05, FP16 <= 0.2, INT8 tensorrt default recipe <= 1.0.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path


def run(command: list[str]) -> None:
    print("$ " + " ".join(shlex.quote(part) for part in command), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="bundled")
    parser.add_argument("--imgsz", type=int, default=0, help="network input size; default: the model's documented size")
    parser.add_argument("--scene-size", type=int, default=0,
                        help="synthetic scene size; default: the scene size the model was trained on")
    parser.add_argument("--images", type=int, default=500, help="test set size and calibration sample")
    parser.add_argument("--sensitivity-images", type=int, default=100,
                        help="extra calibration-set scenes, outside the sample: --exclude auto measures on them")
    parser.add_argument("--test-seed", type=int, default=11)
    parser.add_argument("--calib-seed", type=int, default=12)
    parser.add_argument("--methods", default="meanmax,minmax,entropy,percentile")
    parser.add_argument("--no-auto", action="store_true", help="skip the --exclude auto variants")
    parser.add_argument("--work", type=Path, default=Path("runs/precision"))
    args = parser.parse_args()
    if not args.imgsz or not args.scene_size:
        from kapao_edge.model import read_checkpoint

        loaded = read_checkpoint(args.weights)
        args.imgsz = args.imgsz or loaded.imgsz
        args.scene_size = args.scene_size or loaded.scene_size or args.imgsz

    cli = [sys.executable, "-m", "kapao_edge.cli"]
    work = args.work
    calib_size = args.images + args.sensitivity_images
    test, calib = work / f"test_seed{args.test_seed}", work / f"calib_seed{args.calib_seed}_{calib_size}"
    for folder, seed, count in ((test, args.test_seed, args.images), (calib, args.calib_seed, calib_size)):
        if not (folder / "person_keypoints.json").is_file():
            run([*cli, "synth", "--out", str(folder), "--images", str(count), "--seed", str(seed),
                 "--imgsz", str(args.scene_size)])

    fp32 = work / "model_fp32.onnx"
    if not fp32.is_file():
        run([*cli, "export", "--weights", args.weights, "--imgsz", str(args.imgsz),
             "--dynamic", "batch+hw", "--out", str(fp32)])

    variants: list[Path] = [fp32]

    def quantize(name: str, *options: str) -> None:
        out = work / f"model_{name}.onnx"
        if not out.is_file():
            run([*cli, "quantize", "--onnx", str(fp32), "--out", str(out), "--imgsz", str(args.imgsz), *options])
        variants.append(out)

    calibration = ["--calib", str(calib / "images"), "--calib-images", str(args.images)]
    quantize("fp16", "--precision", "fp16", *calibration)  # data ranges: tensors that would overflow stay FP32
    int8 = ["--precision", "int8", *calibration]
    for method in args.methods.split(","):
        quantize(f"int8_trt_{method}", *int8, "--target", "tensorrt", "--method", method)
        if not args.no_auto:
            quantize(f"int8_trt_{method}_auto", *int8, "--target", "tensorrt", "--method", method, "--exclude", "auto")
    quantize("int8_cpu_meanmax", *int8, "--target", "cpu", "--method", "meanmax")
    if not args.no_auto:
        quantize("int8_cpu_meanmax_auto", *int8, "--target", "cpu", "--method", "meanmax", "--exclude", "auto")

    report = work / "parity.json"
    command = [*cli, "parity", "--weights", args.weights, "--data", str(test / "person_keypoints.json"),
               "--images", str(test / "images"), "--imgsz", str(args.imgsz),
               "--engines", ",".join(str(v) for v in variants), "--json", str(report)]
    print("$ " + " ".join(shlex.quote(part) for part in command), flush=True)
    finished = subprocess.run(command)
    summary = json.loads(report.read_text())
    print(f"reference AP {summary['reference']['AP']:.2f}")
    for variant in summary["variants"]:
        print(f"{variant['name']:<32} AP {variant['AP']:6.2f}  ΔAP {variant['delta_AP']:+.3f}  "
              f"{'ok' if variant['within_tolerance'] else 'OUT OF TOLERANCE'}")
    sys.exit(finished.returncode)


if __name__ == "__main__":
    main()
