"""How many candidate rows a frame needs, and what a compact output of K rows costs in AP.

On synthetic scenes of a seed no model trained on, with the bundled model: the distribution of rows
above the objectness floor (what ``--max-candidates`` must hold), then AP at val thresholds for the
float + full file and for uint8 + compact files of several K, and AP with the device letterbox (torch,
on this CPU) against the host letterbox. Exports go to a temporary folder.

    python benchmarks/compact_output.py --images 100 --ks 256,512,1000,2048
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--seed", type=int, default=31)
    parser.add_argument("--ks", default="256,512,1000,2048")
    parser.add_argument("--floor", type=float, default=0.001)
    args = parser.parse_args()

    from kapao_edge.data.synth import generate_dataset
    from kapao_edge.engines import load_engine
    from kapao_edge.eval.validate import validate
    from kapao_edge.export import export_onnx
    from kapao_edge.io_options import IoOptions
    from kapao_edge.model import read_checkpoint
    from kapao_edge.runtime.pipeline import PosePipeline

    loaded = read_checkpoint("bundled")
    imgsz = loaded.imgsz
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        annotations = generate_dataset(folder / "scenes", args.images, args.seed, preset="coco",
                                       imgsz=loaded.scene_size or imgsz, workers=0)
        full_path = folder / "full.onnx"
        export_onnx(loaded.model, full_path, imgsz=(imgsz, imgsz), verify=False)
        with load_engine(full_path) as full:
            counts = []
            pipeline = PosePipeline(full, imgsz=imgsz, preprocess="val")
            from kapao_edge.data.coco import load_keypoint_dataset

            dataset = load_keypoint_dataset(annotations)
            for index in range(len(dataset)):
                prepared = pipeline.preprocess(dataset.load_image(index))
                rows = full.run(prepared.inputs).predictions  # (1, N, No)
                counts.append(int((rows[0, :, 4] > args.floor).sum()))
            reference = validate(full, annotations, imgsz=imgsz, progress=False).metrics["AP"]
        counts_np = np.array(counts)
        print(f"bundled model, {args.images} scenes (seed {args.seed}), {imgsz} px, val pre-processing")
        print(f"rows above objectness {args.floor:g}: median {np.median(counts_np):.0f}, p90 {np.percentile(counts_np, 90):.0f}, "
              f"p99 {np.percentile(counts_np, 99):.0f}, max {counts_np.max()} (of {rows.shape[1]} rows)")
        print(f"float + full: AP {reference:.2f}")
        for k in (int(v) for v in args.ks.split(",")):
            path = folder / f"k{k}.onnx"
            export_onnx(loaded.model, path, imgsz=(imgsz, imgsz), io=IoOptions("uint8", k, args.floor), verify=False)
            with load_engine(path) as engine, warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ap = validate(engine, annotations, imgsz=imgsz, progress=False).metrics["AP"]
            over = int((counts_np > k).sum())
            print(f"uint8 + compact K={k}: AP {ap:.2f} (dAP {ap - reference:+.2f}); frames over K: {over}")
        with load_engine("bundled") as engine:
            host = validate(engine, annotations, imgsz=imgsz, progress=False, preprocess="host").metrics["AP"]
            device = validate(engine, annotations, imgsz=imgsz, progress=False, preprocess="device").metrics["AP"]
        print(f"torch, demo letterbox on the host: AP {host:.2f}; on the device (torch, CPU here): AP {device:.2f} "
              f"(dAP {device - host:+.2f})")


if __name__ == "__main__":
    main()
