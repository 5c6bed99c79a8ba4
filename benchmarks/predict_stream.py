"""`predict` on a video: the pipelined stream against the sequential loop it replaced, side by side.

    python benchmarks/predict_stream.py [--weights bundled] [--imgsz 448] [--frames 40] [--rounds 3]
        [--frame-size 1280x720] [--threads 1]

Both variants use one engine and one video (synthetic scenes the bundled model was not trained on)
and write the same outputs: a drawn mp4 and one JSON line per frame. Sequential: read a frame, run
the pipeline, draw, write, then the next frame (the loop predict had before streams). Pipelined:
`kapao_edge.commands.predict.run_predict`, which reads, pre-processes, infers and post-processes on
their own threads while the main thread draws and writes. Rounds alternate the two so both see the
same machine state; prints frames per second (median over rounds), the ratio and the load average:
overlap can only help when a core is free, so on a machine other jobs saturate expect about 1x.

Use ``--threads 1`` on a small, shared CPU: torch's OpenMP team of 2+ threads on the main thread
collapses when other processes hold the cores (seconds per frame), which the sequential loop suffers
and a worker thread does not, so the default thread count measures that artefact, not the overlap.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import torch

from kapao_edge import outputs
from kapao_edge.commands.predict import _StopOnSignal, run_predict
from kapao_edge.data import iter_frames, open_source
from kapao_edge.data.synth import generate_dataset
from kapao_edge.engines import load_engine
from kapao_edge.presets import get_preset
from kapao_edge.runtime import PosePipeline


def make_video(folder: Path, frames: int, size: int, frame_wh: tuple[int, int]) -> Path:
    """``frames`` synthetic scenes (seed 20261204, rendered at ``size``) as a 10 fps mp4v video whose
    frames are ``frame_wh``: a camera's frame, letterboxed down to the model input by the pipeline."""
    generate_dataset(folder / "scenes", frames, 20261204, get_preset("coco"), size, workers=1)
    video = folder / "scenes.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, frame_wh)
    for image in sorted((folder / "scenes" / "images").iterdir()):
        writer.write(cv2.resize(cv2.imread(str(image)), frame_wh, interpolation=cv2.INTER_LINEAR))
    writer.release()
    return video


def sequential(pipeline: PosePipeline, video: Path, out: Path) -> int:
    """One frame at a time through every step, as predict ran before streams."""
    count = 0
    with outputs.VideoWriter(out / f"{video.stem}.mp4", 10.0) as writer, \
            outputs.JsonLinesWriter(out / f"{video.stem}.jsonl") as jsonl:
        for frame in iter_frames(video):
            result = pipeline(frame.image_bgr)
            result.frame_index = frame.index
            writer.write(outputs.draw_result(frame.image_bgr, result.poses, pipeline.preset))
            jsonl.write(outputs.frame_record(result))
            count += 1
    return count


def pipelined(pipeline: PosePipeline, video: Path, out: Path) -> int:
    with open_source(video) as frames:
        summary = run_predict(pipeline, frames, out, save_images=True, save_json=False, save_jsonl=True,
                              show=False, stopper=_StopOnSignal())
    return summary["frames"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default="bundled")
    parser.add_argument("--engine", type=Path, default=None, help="an .onnx file instead of --weights")
    parser.add_argument("--imgsz", type=int, default=448)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frame-size", default="1280x720", help="WxH of the video's frames")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = parser.parse_args()
    frame_wh = tuple(int(v) for v in args.frame_size.lower().split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)

    engine = load_engine(args.engine) if args.engine else load_engine(args.weights, backend="torch")
    pipeline = PosePipeline(engine, imgsz=args.imgsz)
    variants = {"sequential": sequential, "pipelined": pipelined}
    fps: dict[str, list[float]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory() as tmp:
        video = make_video(Path(tmp), args.frames, args.imgsz, frame_wh)
        pipeline(next(iter_frames(video)).image_bgr)  # warm-up: first-call allocations are nobody's cost
        for round_index in range(args.rounds):
            order = list(variants) if round_index % 2 == 0 else list(reversed(variants))
            for name in order:
                out = Path(tmp) / f"{name}{round_index}"
                start = time.perf_counter()
                count = variants[name](pipeline, video, out)
                fps[name].append(count / (time.perf_counter() - start))
                assert count == args.frames, f"{name} processed {count} of {args.frames} frames"
    medians = {name: statistics.median(values) for name, values in fps.items()}
    print(f"{engine.backend} engine, imgsz {args.imgsz}, {args.frames} frames of {frame_wh[0]}x{frame_wh[1]}, "
          f"torch threads {torch.get_num_threads()}, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")
    for name, values in fps.items():
        print(f"  {name:<11} {medians[name]:6.2f} fps (rounds: {', '.join(f'{v:.2f}' for v in values)})")
    print(f"  pipelined / sequential: {medians['pipelined'] / medians['sequential']:.2f}x")


if __name__ == "__main__":
    main()
