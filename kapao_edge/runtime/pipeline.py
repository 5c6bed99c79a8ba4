"""The one frame -> poses path: pre-processing part -> engine -> post-processing (-> tracker).

``predict``, ``val``, ``bench`` and ``demo`` all run ``PosePipeline``. It is split into three stages,
``preprocess`` (host work), ``infer`` (the engine) and ``postprocess``, so that a stream can overlap
frame n+1's pre-processing with frame n's inference and frame n-1's post-processing
(``pipeline.stream``, ``pipeline.map``), and results still come out in frame order.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np

from kapao_edge.data import LetterboxInfo, check_input_size, prepare, prepare_val, rect_batch_shape
from kapao_edge.data.letterbox import letterbox
from kapao_edge.engines.base import Engine, EngineOutput
from kapao_edge.errors import InputError
from kapao_edge.postprocess import Poses, PostprocessConfig, postprocess


@dataclass
class PoseResult:
    """Poses of one frame in its own pixels, and where the frame sits in its stream."""

    poses: Poses
    letterbox: LetterboxInfo
    frame_index: int = 0
    timestamp: float | None = None
    dropped: int = 0  # frames the stream dropped before this one (live sources, cumulative)
    dropped_candidates: int = 0  # candidate rows a compact file could not return (see io_options)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage


# ---------------------------------------------------------------- pre-processing parts


class Letterbox:
    """The official demo letterbox on the host: (auto) smallest 64-multiple rectangle, or the full size."""

    on_device = False

    def __init__(self, imgsz: int | tuple[int, int], *, auto: bool = True) -> None:
        self.imgsz = check_input_size(imgsz)
        self.auto = auto

    def __call__(self, frame_bgr: np.ndarray, input_format: str) -> tuple[np.ndarray, LetterboxInfo]:
        if input_format == "uint8":  # the graph scales: the host only resizes and pads uint8
            from kapao_edge.data.preprocess import as_bgr

            image = as_bgr(frame_bgr)
            padded, ratio, pad = letterbox(image, self.imgsz, auto=self.auto)  # (H, W, 3)
            info = LetterboxInfo((int(image.shape[0]), int(image.shape[1])), (int(padded.shape[0]), int(padded.shape[1])), ratio, pad)
            return padded, info
        return prepare(frame_bgr, self.imgsz, auto=self.auto)  # (3, H, W) float32


class ValResize:
    """The official validation pre-processing: long side to ``imgsz``, then a 64-multiple rectangle."""

    on_device = False

    def __init__(self, imgsz: int, *, fixed_hw: tuple[int, int] | None = None) -> None:
        self.imgsz = imgsz
        self.fixed_hw = fixed_hw

    def __call__(self, frame_bgr: np.ndarray, input_format: str) -> tuple[np.ndarray, LetterboxInfo]:
        batch_hw = self.fixed_hw or rect_batch_shape([frame_bgr.shape[:2]], self.imgsz)
        chw, info = prepare_val(frame_bgr, self.imgsz, batch_hw=batch_hw)  # (3, H, W) float32
        if input_format == "uint8":  # exact: the float input is k / 255 for uint8 k
            rgb = np.rint(chw * 255.0).astype(np.uint8)  # (3, H, W)
            return np.ascontiguousarray(rgb[::-1].transpose(1, 2, 0)), info  # (H, W, 3) BGR
        return chw, info


class DeviceLetterbox:
    """Upload the original uint8 frame; the engine letterboxes it on its device (``Engine.run_frames``)."""

    on_device = True

    def __init__(self, imgsz: int | tuple[int, int], *, auto: bool = True) -> None:
        self.imgsz = check_input_size(imgsz)
        self.auto = auto


# ---------------------------------------------------------------- the pipeline


@dataclass
class Prepared:
    """Host-side work done for a batch of frames: what ``infer`` consumes."""

    frames: list[np.ndarray]
    inputs: np.ndarray | None  # (B, 3, H, W) float32 or (B, H, W, 3) uint8; None when letterboxed on the device
    infos: list[LetterboxInfo]
    single: bool
    meta: list[dict[str, Any]]  # per frame: frame_index, timestamp, dropped (filled by streams)
    seconds: float = 0.0

    @property
    def bytes_to_device(self) -> int:
        """Bytes that cross host -> device for this batch on a GPU engine."""
        if self.inputs is not None:
            return int(self.inputs.nbytes)
        return int(sum(frame.nbytes for frame in self.frames))


@dataclass
class Inferred:
    prepared: Prepared
    output: EngineOutput
    seconds: float = 0.0

    @property
    def bytes_to_host(self) -> int:
        counts = self.output.num_candidates
        return int(self.output.predictions.nbytes + (counts.size * 4 if counts is not None else 0))


class PosePipeline:
    """Runs one engine on original BGR frames and returns poses in original-frame pixels.

    ``preprocess``: "auto" (the device letterbox where the engine runs on a GPU and can, else the host
    letterbox), "host", "device", "val", or a part object. Engines with a fixed input shape always get
    exactly that shape. ``config``: post-processing; default the demo preset with what the model file
    recommends. ``tracker``: an object with ``update(poses, image) -> ids`` (``kapao_edge.runtime.tracker``);
    it gets each original frame too, for the clothes' colours that tell look-alike people apart.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        imgsz: int | tuple[int, int] | None = None,
        config: PostprocessConfig | None = None,
        postprocess_backend: str = "auto",
        tracker: Any = None,
        preprocess: str | Any = "auto",
        tta: bool = False,
    ) -> None:
        if not isinstance(engine, Engine):
            raise InputError(f"PosePipeline needs an engine (kapao_edge.load_engine), got {type(engine).__name__}")
        self.engine = engine
        fixed_hw = engine.metadata.default_hw
        self.imgsz = fixed_hw if fixed_hw is not None else (imgsz or engine.metadata.documented_imgsz or 640)
        auto = fixed_hw is None
        self.preprocessor = self._part(preprocess, auto, imgsz)
        if config is None and tracker is not None:  # the tracker's second stage needs the low-score people
            config = PostprocessConfig.named("demo", engine.metadata.postprocess, conf_thres=tracker.low_score)
        self.config = config or PostprocessConfig.named("demo", engine.metadata.postprocess)
        self.postprocess_backend = postprocess_backend
        self.tracker = tracker
        self.tta = tta
        if tta and (engine.input_format != "float" or engine.metadata.compact):
            raise InputError("test-time augmentation needs a float-input, full-output file (export without --input uint8 / --max-candidates)")
        self._warned_dropped = False
        self._check_floor()

    def _part(self, preprocess: str | Any, auto: bool, asked_imgsz: Any) -> Any:
        if not isinstance(preprocess, str):
            return preprocess
        on_gpu = self.engine.device != "cpu" and self.engine.letterboxes_on_device
        if preprocess == "auto":
            preprocess = "device" if on_gpu else "host"
        if preprocess == "host":
            return Letterbox(self.imgsz, auto=auto)
        if preprocess == "device":
            if not self.engine.letterboxes_on_device:
                raise InputError(f"the {self.engine.backend} engine cannot letterbox on its device; use preprocess='host'")
            return DeviceLetterbox(self.imgsz, auto=auto)
        if preprocess == "val":
            size = asked_imgsz or self.imgsz  # the long side; a fixed-shape engine still fixes the batch shape
            return ValResize(size if isinstance(size, int) else max(size), fixed_hw=self.engine.metadata.default_hw)
        raise InputError(f"preprocess must be auto, host, device or val, got {preprocess!r}")

    def _check_floor(self) -> None:
        """A compact file drops rows below its floor: thresholds under it cannot be honoured."""
        metadata = self.engine.metadata
        if not metadata.compact or metadata.candidate_floor is None:
            return
        lowest = min(self.config.conf_thres, self.config.conf_thres_kp)
        if lowest < metadata.candidate_floor:
            warnings.warn(
                f"threshold {lowest:g} is below this file's candidate floor {metadata.candidate_floor:g}: rows in "
                "between never leave the engine (re-export with a lower --candidate-floor)",
                RuntimeWarning,
                stacklevel=3,
            )

    @property
    def preset(self):
        return self.engine.preset

    # ---- the three stages

    def preprocess(self, frame_or_frames: np.ndarray | list[np.ndarray], meta: list[dict[str, Any]] | None = None) -> Prepared:
        """Host work for one frame (an array) or a batch (a list of equally letterboxed frames)."""
        start = time.perf_counter()
        single = isinstance(frame_or_frames, np.ndarray)
        frames = [frame_or_frames] if single else list(frame_or_frames)
        if not frames:
            raise InputError("empty batch: at least one frame is needed")
        meta = meta or [{} for _ in frames]
        if getattr(self.preprocessor, "on_device", False):
            return Prepared(frames, None, [], single, meta, time.perf_counter() - start)
        prepared = [self.preprocessor(frame, self.engine.input_format) for frame in frames]
        shapes = {array.shape for array, _ in prepared}
        if len(shapes) != 1:
            raise InputError(f"frames of one batch letterbox to different shapes {sorted(shapes)}")
        inputs = np.stack([array for array, _ in prepared])  # (B, 3, H, W) or (B, H, W, 3)
        return Prepared(frames, inputs, [info for _, info in prepared], single, meta, time.perf_counter() - start)

    def infer(self, prepared: Prepared, *, timed: bool = False) -> Inferred:
        start = time.perf_counter()
        if prepared.inputs is None:  # device letterbox
            part = self.preprocessor
            output, infos = self.engine.run_frames(prepared.frames, part.imgsz, auto=part.auto, timed=timed)
            prepared.infos = infos
        elif self.tta:
            output = EngineOutput(self._tta(prepared.inputs))
        else:
            output = self.engine.run(prepared.inputs, timed=timed)
        return Inferred(prepared, output, time.perf_counter() - start)

    def postprocess(self, inferred: Inferred) -> PoseResult | list[PoseResult]:
        """Poses per frame (in frame order: the tracker sees frames as they come)."""
        start = time.perf_counter()
        prepared, output = inferred.prepared, inferred.output
        infos = prepared.infos
        input_hw = infos[0].input_hw
        poses_list = postprocess(
            output.predictions, input_hw, [info.original_hw for info in infos], self.config,
            backend=self.postprocess_backend,
        )
        dropped = output.dropped(self.engine.metadata.max_candidates)  # (B,)
        if dropped.any() and not self._warned_dropped:
            self._warned_dropped = True
            warnings.warn(
                f"{int(dropped.max())} candidate rows above objectness {self.engine.metadata.candidate_floor:g} "
                f"did not fit in this file's {self.engine.metadata.max_candidates} (max_candidates): poses may be "
                "missing; re-export with a larger --max-candidates (warned once)",
                RuntimeWarning,
                stacklevel=2,
            )
        results = []
        for index, (poses, info) in enumerate(zip(poses_list, infos)):
            if self.tracker is not None:
                poses = poses.with_ids(self.tracker.update(poses, prepared.frames[index]))  # ids (P,)
            meta = prepared.meta[index]
            results.append(
                PoseResult(
                    poses=poses,
                    letterbox=info,
                    frame_index=int(meta.get("frame_index", index)),
                    timestamp=meta.get("timestamp"),
                    dropped=int(meta.get("dropped", 0)),
                    dropped_candidates=int(dropped[index]),
                )
            )
        seconds = time.perf_counter() - start
        for result in results:
            result.timings = {"preprocess": prepared.seconds, "infer": inferred.seconds, "postprocess": seconds}
        return results[0] if prepared.single else results

    def __call__(self, frame_bgr: np.ndarray) -> PoseResult:
        return self.postprocess(self.infer(self.preprocess(frame_bgr)))  # type: ignore[return-value]

    def run_batch(self, frames: list[np.ndarray]) -> list[PoseResult]:
        """One engine call for several frames (they must letterbox to one shape)."""
        return self.postprocess(self.infer(self.preprocess(list(frames))))  # type: ignore[return-value]

    # ---- overlapped

    def map(self, frames: Iterable[np.ndarray], *, batch: int = 1, queue_size: int = 2) -> Iterator[PoseResult]:
        """Poses for every frame, in order, with pre-processing, inference and post-processing overlapped."""
        from kapao_edge.runtime.stream import run_stages

        if batch < 1:
            raise InputError(f"batch must be >= 1, got {batch}")
        batches = _batched(frames, batch)
        for results in run_stages(batches, [self.preprocess, self.infer, self.postprocess], queue_size=queue_size):
            yield from results

    def stream(self, source: Any, **options: Any) -> Iterator[PoseResult]:
        """Poses from a video, folder, glob, camera index, URL or iterator of frames (see runtime.stream)."""
        from kapao_edge.runtime.stream import stream

        return stream(self, source, **options)

    def _tta(self, images: np.ndarray) -> np.ndarray:
        import torch

        from kapao_edge.model.tta import predict_tta

        if not self.engine.metadata.dynamic_hw:
            height, width = self.engine.metadata.default_hw
            raise InputError(
                f"test-time augmentation resizes the input, but this {self.engine.backend} engine is fixed at "
                f"{height}x{width}: export it with dynamic height and width, or drop --tta"
            )

        def network(batch: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(self.engine(batch.numpy()))  # (B, N, No)

        with torch.inference_mode():
            return predict_tta(
                network, torch.from_numpy(images), preset=self.engine.preset, max_stride=max(self.engine.metadata.strides)
            ).numpy()  # (B, N', No)


def _batched(frames: Iterable[np.ndarray], size: int) -> Iterator[list[np.ndarray]]:
    chunk: list[np.ndarray] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
