"""`kapao-edge predict`: poses for images, folders, globs, videos, cameras and stream URLs.

Writes drawn images (still-image sources) or an annotated video (everything else), one JSON line per
processed frame and a COCO results JSON into a fresh run folder; shows live FPS and per-stage latency.
"""

from __future__ import annotations

import collections
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from kapao_edge.commands._common import IMGSZ_HELP, IMGSZ_METAVAR, long_side, model_imgsz, parse_imgsz, console, err_console, user_errors

STILL_KINDS = ("image", "folder", "glob")
STAGES = ("read", "preprocess", "infer", "postprocess", "pipeline", "latency")
LIVE_WINDOW = 30  # frames the live FPS and stage times are measured over


def open_engine(weights: Optional[Path], engine: Optional[Path], *, device: str = "cpu",
                preset: Optional[str] = None, imgsz: Optional[int] = None):
    """The engine named by exactly one of ``--weights`` (torch reference) or ``--engine`` (a deployed file)."""
    from kapao_edge.engines import load_engine
    from kapao_edge.errors import InputError

    if (weights is None) == (engine is None):
        raise InputError("give exactly one of --weights (a checkpoint) or --engine (an ONNX or TensorRT file)")
    if weights is not None:
        return load_engine(weights, backend="torch", device=device, preset=preset)
    options = {"preset": preset, "imgsz": imgsz} if (preset or imgsz) else {}
    return load_engine(engine, **options)


def postprocess_config(thresholds: str, engine, **overrides):
    """The named preset, then what the model file recommends, then the user's explicit options."""
    from kapao_edge.errors import InputError
    from kapao_edge.postprocess import PostprocessConfig
    from kapao_edge.postprocess.config import PRESET_NAMES

    if thresholds not in PRESET_NAMES:  # named() would refuse it too, but without the option's name
        raise InputError(f"--thresholds must be one of {', '.join(PRESET_NAMES)}, got {thresholds!r}")
    return PostprocessConfig.named(thresholds, engine.metadata.postprocess, **overrides)


def make_tracker(engine):
    """A PoseTracker for the engine's preset; imported late so predict works in builds without it."""
    from kapao_edge.errors import InputError

    try:
        from kapao_edge.runtime.tracker import PoseTracker
    except ImportError as exc:
        raise InputError(f"--track needs kapao_edge.runtime.tracker, which this installation lacks ({exc})") from None
    return PoseTracker(preset=engine.preset.name)


def make_pipeline(engine, *, imgsz, config, postprocess_backend, tracker=None):
    from kapao_edge.runtime.pipeline import PosePipeline

    extra = {"tracker": tracker} if tracker is not None else {}
    return PosePipeline(engine, imgsz=imgsz, config=config, postprocess_backend=postprocess_backend, **extra)


def remote_model(url: str):
    """A client of a `kapao-edge serve` server, standing in for the engine (``--server``)."""
    from kapao_edge.serving import Client

    return Client(url)


def _check_server_options(ctx: typer.Context, **given) -> None:
    """With --server the model runs on the server: options that configure it here would be ignored."""
    from kapao_edge.errors import InputError

    defaults = {param.name: param.default for param in ctx.command.params}
    named = [name for name, value in given.items() if value is not None and value != defaults[name]]
    if named:
        options = ", ".join("--" + name.replace("_", "-") for name in named)
        raise InputError(f"--server runs the model on the server: {options} cannot apply here; "
                         "set them on `kapao-edge serve`, or drop --server")


class _StopOnSignal:
    """SIGINT and SIGTERM ask the run to stop after the frame in hand (outputs stay consistent); a
    second signal stops at once. Only the main thread can install handlers; elsewhere this is a no-op."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.on_stop = lambda: None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum, frame) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum
        self.on_stop()

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum or signal.SIGINT)


class _Display:
    """``--show``: an OpenCV window where a display exists; one warning line where none does."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled and self._available()
        if enabled and not self.enabled:
            err_console.print("[yellow]warning:[/] --show: no display available; frames are not shown", highlight=False)

    @staticmethod
    def _available() -> bool:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return False
        import cv2

        try:
            cv2.namedWindow("kapao-edge", cv2.WINDOW_NORMAL)
        except cv2.error:
            return False
        return True

    def show(self, image) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        if not self.enabled:
            return True
        import cv2

        cv2.imshow("kapao-edge", image)
        return cv2.waitKey(1) & 0xFF not in (27, ord("q"))

    def close(self) -> None:
        if self.enabled:
            import cv2

            cv2.destroyAllWindows()


def _percentile_ms(values, q: float = 50.0) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values) * 1000.0, q)) if values else float("nan")


_SHORT = {"read": "read", "preprocess": "pre", "infer": "infer", "postprocess": "post", "pipeline": "pipe",
          "latency": "lat"}


def _stage_text(timings: dict[str, Any]) -> str:
    """``pre 0.6 infer 41 post 0.2 lat 330``: median ms per stage, short enough for an 80-column line."""
    return " ".join(f"{_SHORT[name]} {_percentile_ms(timings[name]):.3g}" for name in STAGES if timings.get(name))


def run_predict(pipeline, frames, run_dir: Path, *, save_images: bool, save_json: bool, save_jsonl: bool,
                show: bool, stopper: _StopOnSignal) -> dict[str, Any]:
    """Stream ``frames`` through ``pipeline`` and write the outputs; stops cleanly on a signal."""
    import contextlib

    import cv2
    from rich.progress import MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kapao_edge import outputs
    from kapao_edge.data import SourceError
    from kapao_edge.errors import InputError
    from kapao_edge.runtime.stream import stream

    still = frames.kind in STILL_KINDS
    summary: dict[str, Any] = {"frames": 0, "poses": 0, "dropped": 0, "run_dir": str(run_dir)}
    timings: dict[str, list[float]] = {}  # every frame, for the summary's p50
    recent: dict[str, collections.deque] = {}  # the last LIVE_WINDOW frames, for the live status line
    done_at: collections.deque = collections.deque(maxlen=LIVE_WINDOW)  # perf_counter of recent frames
    coco: list[dict[str, Any]] = []
    shown_at = 0.0

    def warn(message: str) -> None:
        err_console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        run_dir.mkdir(parents=True, exist_ok=True)
        jsonl = stack.enter_context(outputs.JsonLinesWriter(run_dir / f"{frames.name}.jsonl")) if save_jsonl else None
        video = None
        if save_images and not still:
            pace = 30 if frames.live else 0  # live: dropped frames make the source fps wrong for what is kept
            video = stack.enter_context(outputs.VideoWriter(run_dir / f"{frames.name}.mp4", frames.fps, pace_frames=pace))
        display = _Display(show)
        stack.callback(display.close)
        poses_stream = stack.enter_context(stream(pipeline, frames, on_warning=warn))
        stopper.on_stop = poses_stream.stop
        bar = stack.enter_context(Progress(
            TextColumn("{task.description}"), MofNCompleteColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"), console=console, transient=True,
        ))
        task = bar.add_task(frames.name, total=frames.total, status="")
        results = poses_stream.with_frames()
        while True:
            try:
                frame, result = next(results)
            except StopIteration:
                break
            except SourceError as exc:  # a live source gave up: keep what was done, report it after the summary
                summary["source_error"] = str(exc)
                break
            poses = result.poses
            drawn = outputs.draw_result(frame.image_bgr, poses, pipeline.preset) if (save_images or show) else None
            if video is not None:
                video.write(drawn, frame.timestamp)
            elif save_images and still:
                target = run_dir / frame.name
                from kapao_edge.utils.io import atomic_path

                with atomic_path(target) as tmp:  # tmp keeps the suffix cv2 picks the format by
                    if not cv2.imwrite(str(tmp), drawn):
                        raise InputError(f"cannot write {target} (unsupported image format?)")
            if jsonl is not None:
                jsonl.write(outputs.frame_record(result, image=frame.name if still else None))
            image_id = outputs.image_id_for(frame.name, frame.index) if still else frame.index
            coco.extend(outputs.coco_results(poses, image_id))
            summary["frames"] += 1
            summary["poses"] += len(poses)
            summary["dropped"] = int(result.dropped)
            for name, seconds in result.timings.items():
                timings.setdefault(name, []).append(seconds)
                recent.setdefault(name, collections.deque(maxlen=LIVE_WINDOW)).append(seconds)
            now = time.perf_counter()
            done_at.append(now)
            if now - shown_at >= 0.5 or summary["frames"] == 1:  # a status line twice a second is plenty
                shown_at = now
                span = done_at[-1] - done_at[0]
                fps = (len(done_at) - 1) / span if span > 0 else 0.0
                status = f"{fps:.1f} fps | ms {_stage_text(recent)}"
                if result.dropped:
                    status += f" | dropped {result.dropped}"
                bar.update(task, status=status)
            bar.advance(task)
            if not display.show(drawn if drawn is not None else frame.image_bgr) or stopper.signum is not None:
                break
        if video is not None:
            summary["video"] = str(video.close()) if video.frames else None
            summary["video_frames"] = video.frames
        if jsonl is not None:
            jsonl.close()
            summary["jsonl"] = str(jsonl.target)
    elapsed = time.perf_counter() - start
    summary["fps"] = summary["frames"] / elapsed if elapsed > 0 else 0.0
    order = [name for name in STAGES if name in timings] + [name for name in timings if name not in STAGES]
    summary["stage_p50_ms"] = {name: _percentile_ms(timings[name]) for name in order}
    summary["skipped"] = list(frames.skipped)
    if save_json:
        summary["results_json"] = str(outputs.write_coco_results(run_dir / "results.json", coco))
    return summary


@user_errors
def predict(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="An image, a folder, a glob ('frames/*.jpg'), a video, a camera index (0) or an RTSP/HTTP URL.")],
    weights: Annotated[Optional[Path], typer.Option("--weights", "-w", metavar="FILE", help="Checkpoint (.pt) or bundled model name, run with the PyTorch reference [default: bundled, when no --engine or --server].")] = None,
    engine: Annotated[Optional[Path], typer.Option("--engine", "-e", metavar="FILE", help="Deployed model: .onnx (ONNX Runtime) or .engine/.plan (TensorRT, built by `kapao-edge build`).")] = None,
    imgsz: Annotated[Optional[str], typer.Option(metavar=IMGSZ_METAVAR, help=IMGSZ_HELP)] = None,
    thresholds: Annotated[str, typer.Option(help="Post-processing preset: 'demo' (official image demo) or 'val'.")] = "demo",
    conf_thres: Annotated[Optional[float], typer.Option(help="Person confidence threshold (overrides the preset).")] = None,
    iou_thres: Annotated[Optional[float], typer.Option(help="Person NMS IoU threshold.")] = None,
    conf_thres_kp: Annotated[Optional[float], typer.Option(help="Keypoint-object confidence threshold.")] = None,
    iou_thres_kp: Annotated[Optional[float], typer.Option(help="Keypoint-object NMS IoU threshold.")] = None,
    overwrite_tol: Annotated[Optional[float], typer.Option(help="Fusion distance limit in original-image pixels (default: the model's recommendation, else the preset's).")] = None,
    out: Annotated[Path, typer.Option(metavar="DIR", help="Run folder; when it exists and is not empty, the next free <out>2, <out>3, ... is used (see --exist-ok).")] = Path("runs/predict"),
    exist_ok: Annotated[bool, typer.Option("--exist-ok", help="Write into --out even when it holds an earlier run.")] = False,
    save_images: Annotated[bool, typer.Option("--save-images/--no-save-images", help="Write drawn images or the annotated video.")] = True,
    save_json: Annotated[bool, typer.Option("--save-json/--no-save-json", help="Write COCO keypoint results JSON (with boxes).")] = True,
    save_jsonl: Annotated[bool, typer.Option("--save-jsonl/--no-save-jsonl", help="Write one JSON line per processed frame.")] = True,
    track: Annotated[bool, typer.Option("--track", help="Give each person a persistent id across frames.")] = False,
    show: Annotated[bool, typer.Option("--show", help="Show drawn frames in a window (where a display exists; q or Esc stops).")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at an undecodable or truncated image instead of skipping it.")] = False,
    preset: Annotated[Optional[str], typer.Option(metavar="NAME", help="Dataset preset (coco, crowdpose) when the file does not say.")] = None,
    device: Annotated[str, typer.Option(help="Torch device for --weights: cpu or cuda.")] = "cpu",
    postprocess_backend: Annotated[str, typer.Option(help="Post-processor: auto, cpp or numpy.")] = "auto",
    server: Annotated[Optional[str], typer.Option(metavar="URL", help="Get poses from a `kapao-edge serve` server (http://HOST:PORT or grpc://HOST:PORT) instead of --weights or --engine; model options are the server's.")] = None,
) -> None:
    """Detect poses, draw them, and write JSON lines per frame and COCO-format results."""
    from kapao_edge.data import open_source
    from kapao_edge.outputs import check_output_dir, choose_run_dir
    from kapao_edge.postprocess import cpp_available

    check_output_dir(out)  # before the model loads: a bad --out costs nothing and leaves nothing
    if server is not None:
        _check_server_options(ctx, weights=weights, engine=engine, imgsz=imgsz, thresholds=thresholds, conf_thres=conf_thres,
                              iou_thres=iou_thres, conf_thres_kp=conf_thres_kp, iou_thres_kp=iou_thres_kp,
                              overwrite_tol=overwrite_tol, preset=preset, device=device,
                              postprocess_backend=postprocess_backend)
    if weights is None and engine is None and server is None:  # as Ultralytics does: a model to start with
        weights = Path("bundled")
        err_console.print("no --weights, --engine or --server: using the bundled model (kapao-edge info bundled)",
                          markup=False)
    frames = open_source(source, strict=strict)  # a missing file, camera or unreachable URL fails here
    imgsz = long_side(parse_imgsz(imgsz) or model_imgsz(weights or engine), "predict")
    try:
        opened = remote_model(server) if server is not None else open_engine(
            weights, engine, device=device, preset=preset, imgsz=imgsz)
        with opened as model:
            tracker = make_tracker(model) if track else None
            if server is None:
                config = postprocess_config(
                    thresholds, model, conf_thres=conf_thres, iou_thres=iou_thres, conf_thres_kp=conf_thres_kp,
                    iou_thres_kp=iou_thres_kp, overwrite_tol=overwrite_tol,
                )
                pipeline = make_pipeline(model, imgsz=imgsz, config=config, postprocess_backend=postprocess_backend,
                                         tracker=tracker)
            else:
                from kapao_edge.serving.client import RemotePipeline

                pipeline = RemotePipeline(model, tracker=tracker)
            run_dir = choose_run_dir(out, exist_ok=exist_ok)
            with _StopOnSignal() as stopper:
                summary = run_predict(pipeline, frames, run_dir, save_images=save_images, save_json=save_json,
                                      save_jsonl=save_jsonl, show=show, stopper=stopper)
    finally:
        frames.close()
    post = "server" if server is not None else "cpp" if postprocess_backend != "numpy" and cpp_available() else "numpy"
    console.print(
        f"{summary['frames']} frame(s), {summary['poses']} pose(s), {summary['dropped']} dropped, "
        f"{len(summary['skipped'])} skipped ({model.backend} engine, {post} post-processing) -> {run_dir}",
        markup=False, soft_wrap=True,
    )
    stages = ", ".join(f"{name} {ms:.1f}" for name, ms in summary["stage_p50_ms"].items())
    console.print(f"{summary['fps']:.2f} FPS; per-stage p50 ms: {stages}", markup=False, soft_wrap=True)
    for key, label in (("video", "video"), ("jsonl", "JSON lines"), ("results_json", "COCO results")):
        if summary.get(key):
            console.print(f"{label}: {summary[key]}", markup=False)
    if summary.get("source_error"):
        from kapao_edge.data import SourceError

        raise SourceError(summary["source_error"])
    if stopper.signum is not None:
        name = signal.Signals(stopper.signum).name
        err_console.print(f"stopped by {name} after {summary['frames']} frame(s); outputs are complete up to there",
                          highlight=False)
        raise typer.Exit(code=stopper.exit_code)
