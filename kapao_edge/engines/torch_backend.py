"""The PyTorch reference as an engine: CPU, or CUDA as a real GPU engine.

On CUDA the network runs FP16 channels-last (with ``precision="fp16"``), replayed from a CUDA graph
captured once per input shape, with preallocated device buffers and pinned host buffers; frames can
be letterboxed on the device (``run_frames``). The graph is ``DeployModel``: the same uint8-input /
compact-output I/O as an exported file, so what is measured here is what a TensorRT plan runs.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kapao_edge.engines.base import Engine, EngineMetadata, EngineOutput
from kapao_edge.errors import EngineError, InputError
from kapao_edge.io_options import DEFAULT_CANDIDATE_FLOOR, IoOptions


def metadata_for_model(
    model: Any,
    *,
    precision: str = "fp32",
    source_sha256: str | None = None,
    io: IoOptions | None = None,
    imgsz: int | None = None,
) -> EngineMetadata:
    """Engine metadata of an in-memory KapaoModel: any batch and any size (multiples of 64)."""
    from kapao_edge import __version__

    io = io or IoOptions()
    return EngineMetadata(
        preset=model.preset.name,
        num_keypoints=model.num_keypoints,
        strides=[int(s) for s in model.stride.tolist()],
        anchors=[list(map(float, level)) for level in model.config["anchors"]],
        input_shape=["batch", 3, "height", "width"],
        precision=precision,
        model_name=model.config.get("name"),
        source_sha256=source_sha256,
        package_version=__version__,
        postprocess=dict(getattr(model, "postprocess", None) or {}),
        input_format=io.input_format,
        max_candidates=io.max_candidates,
        candidate_floor=io.candidate_floor if io.compact else None,
        extra={"imgsz": imgsz} if imgsz else {},
    )


@dataclass
class _Captured:
    """Buffers of one input shape: the graph reads ``device_input`` and writes ``device_outputs``."""

    device_input: Any  # (B, H, W, 3) uint8 or (B, 3, H, W) float, on the device
    host_input: Any  # pinned twin of device_input
    device_outputs: tuple[Any, ...]  # (B, R, No) float32 [, (B,) int32]
    host_outputs: tuple[Any, ...]  # pinned twins
    graph: Any = None  # torch.cuda.CUDAGraph, or None when running eagerly


class TorchEngine(Engine):
    backend = "torch"

    def __init__(
        self,
        model: Any,
        *,
        device: str = "cpu",
        precision: str = "fp32",
        source_sha256: str | None = None,
        io: IoOptions | None = None,
        cuda_graph: bool | None = None,
        channels_last: bool | None = None,
        imgsz: int | None = None,
    ):
        import torch

        from kapao_edge.model.io import DeployModel

        if precision not in ("fp32", "fp16"):
            raise InputError(f"the torch backend runs fp32 or fp16, not {precision!r}")
        io = io or IoOptions()
        super().__init__(metadata_for_model(model, precision=precision, source_sha256=source_sha256, io=io, imgsz=imgsz))
        try:
            self._device = torch.device(device)
        except RuntimeError:
            raise InputError(f"unknown torch device {device!r}; use cpu, cuda or cuda:N") from None
        on_gpu = self._device.type == "cuda"
        if on_gpu and not torch.cuda.is_available():
            raise EngineError("device cuda was asked for, but this torch build sees no CUDA device")
        if precision == "fp16" and not on_gpu:
            warnings.warn("FP16 on the CPU is slow in torch; the CUDA engine is where it pays", RuntimeWarning, stacklevel=3)
        self.use_cuda_graph = on_gpu if cuda_graph is None else bool(cuda_graph and on_gpu)
        self.model = model.to(self._device).eval()
        if precision == "fp16":
            # Network in FP16, decode in FP32: boxes, keypoints and scores share one tensor, and FP16
            # rounding of pixel coordinates (0.5 px steps above 1024) would move keypoints.
            self.model.half()
            self.model.detect.anchor_grid = self.model.detect.anchor_grid.float()
        if on_gpu if channels_last is None else channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.network = DeployModel(self.model, io).eval()
        # Device letterboxing feeds uint8 frames whatever the file's input format is.
        self._uint8_network = DeployModel(self.model, IoOptions("uint8", io.max_candidates, io.candidate_floor)).eval()
        self._captured: dict[tuple[str, tuple[int, ...]], _Captured] = {}
        self._frame_buffers: dict[tuple[int, int], tuple[Any, Any]] = {}

    @property
    def device(self) -> str:
        return str(self._device)

    @property
    def letterboxes_on_device(self) -> bool:
        return True

    # ------------------------------------------------------------------ running

    def _run(self, inputs: np.ndarray, *, timed: bool) -> EngineOutput:
        import torch

        if self.model is None:
            raise EngineError("this engine is closed")
        if self._device.type != "cuda":  # the array itself is the input: no buffers to fill
            host = torch.from_numpy(inputs)
            return self._launch(_Captured(host, host, (), ()), self.network, upload=False, timed=timed)
        buffers = self._buffers("file", inputs.shape, inputs.dtype)
        np.copyto(buffers.host_input.numpy(), inputs)  # into pinned memory: the upload is a DMA
        return self._launch(buffers, self.network, upload=True, timed=timed)

    def run_frames(
        self, frames: list[np.ndarray], input_hw: tuple[int, int], *, auto: bool, timed: bool = False
    ) -> tuple[EngineOutput, list[Any]]:
        """Upload original uint8 frames, letterbox them on the device, run: only uint8 pixels cross over."""
        import torch

        from kapao_edge.data.device_letterbox import letterbox_into
        from kapao_edge.data.letterbox import letterbox_geometry
        from kapao_edge.data.preprocess import LetterboxInfo, as_bgr

        if self.model is None:
            raise EngineError("this engine is closed")
        if not frames:
            raise InputError("empty batch: at least one frame is needed")
        frames = [as_bgr(frame) for frame in frames]
        geometries = [letterbox_geometry(frame.shape[:2], input_hw, auto=auto) for frame in frames]
        shapes = {g.output_hw for g in geometries}
        if len(shapes) != 1:
            raise InputError(f"frames of one batch letterbox to different sizes {sorted(shapes)}; use auto=False")
        height, width = shapes.pop()
        batch_shape = (len(frames), height, width, 3)
        self._check_shape(len(frames), height, width)
        infos = [
            LetterboxInfo(original_hw=(int(f.shape[0]), int(f.shape[1])), input_hw=(height, width), ratio=g.ratio, pad=g.pad)
            for f, g in zip(frames, geometries)
        ]
        on_gpu = self._device.type == "cuda"
        buffers = self._buffers("frames", batch_shape, np.dtype(np.uint8))
        start = time.perf_counter()
        with torch.inference_mode():
            for index, (frame, geometry) in enumerate(zip(frames, geometries)):
                device_frame = self._upload_frame(frame) if on_gpu else torch.from_numpy(frame)
                letterbox_into(device_frame, geometry, buffers.device_input[index])
        if timed and on_gpu:
            torch.cuda.current_stream(self._device).synchronize()  # explicit: upload + letterbox done
        preprocess_seconds = time.perf_counter() - start
        output = self._launch(buffers, self._uint8_network, upload=False, timed=timed)
        if timed:
            output.stages.pop("h2d", None)  # the frames went up inside the pre-processing
            output.stages = {"preprocess": preprocess_seconds, **output.stages}
        return output, infos

    def _upload_frame(self, frame: np.ndarray) -> Any:
        """A device copy of one frame through a pinned staging buffer kept per frame size."""
        import torch

        key = (int(frame.shape[0]), int(frame.shape[1]))
        if key not in self._frame_buffers:
            pinned = torch.empty((*key, 3), dtype=torch.uint8, pin_memory=True)
            self._frame_buffers[key] = (pinned, torch.empty((*key, 3), dtype=torch.uint8, device=self._device))
        pinned, device_frame = self._frame_buffers[key]
        torch.cuda.current_stream(self._device).synchronize()  # the previous upload has left the staging buffer
        np.copyto(pinned.numpy(), frame)
        device_frame.copy_(pinned, non_blocking=True)
        return device_frame

    def _buffers(self, kind: str, shape: tuple[int, ...], dtype: np.dtype) -> _Captured:
        """Buffers (and, on CUDA, the captured graph) for one input shape, made on first use."""
        import torch

        key = (kind, tuple(int(s) for s in shape))
        if key in self._captured:
            return self._captured[key]
        torch_dtype = torch.uint8 if dtype == np.uint8 else torch.float32
        on_gpu = self._device.type == "cuda"
        device_input = torch.zeros(shape, dtype=torch_dtype, device=self._device)
        network = self._uint8_network if kind == "frames" else self.network
        if not on_gpu:
            captured = _Captured(device_input, device_input, (), ())
        else:
            captured = self._capture(network, device_input)
        self._captured[key] = captured
        return captured

    def _capture(self, network: Any, device_input: Any) -> _Captured:
        """Warm up on a side stream, then capture one forward pass (the documented torch pattern)."""
        import torch

        with torch.inference_mode():
            side = torch.cuda.Stream(self._device)
            side.wait_stream(torch.cuda.current_stream(self._device))
            with torch.cuda.stream(side):
                for _ in range(3):  # cuDNN picks its kernels outside the capture
                    outputs = _as_tuple(network(device_input))
            torch.cuda.current_stream(self._device).wait_stream(side)
            graph = None
            if self.use_cuda_graph:
                try:
                    graph = torch.cuda.CUDAGraph()
                    with torch.cuda.graph(graph):
                        outputs = _as_tuple(network(device_input))
                except RuntimeError as exc:  # an op that cannot be captured: run eagerly, say so once
                    warnings.warn(f"CUDA graph capture failed ({exc}); running eagerly", RuntimeWarning, stacklevel=4)
                    graph = None
                    outputs = _as_tuple(network(device_input))
        host_input = torch.empty(device_input.shape, dtype=device_input.dtype, pin_memory=True)
        host_outputs = tuple(torch.empty(o.shape, dtype=o.dtype, pin_memory=True) for o in outputs)
        return _Captured(device_input, host_input, outputs, host_outputs, graph)

    def _launch(self, buffers: _Captured, network: Any, *, upload: bool, timed: bool) -> EngineOutput:
        """Upload (optional), replay or run, copy the outputs back; stages timed with CUDA events."""
        import torch

        with torch.inference_mode():
            if self._device.type != "cuda":
                start = time.perf_counter()
                outputs = _as_tuple(network(buffers.device_input))
                return _output(outputs, {"infer": time.perf_counter() - start} if timed else {})
            stream = torch.cuda.current_stream(self._device)
            events = [torch.cuda.Event(enable_timing=True) for _ in range(4)] if timed else []
            mark = (lambda i: events[i].record(stream)) if timed else (lambda i: None)
            mark(0)
            if upload:
                buffers.device_input.copy_(buffers.host_input, non_blocking=True)
            mark(1)
            if buffers.graph is not None:
                buffers.graph.replay()
                outputs = buffers.device_outputs
            else:
                outputs = _as_tuple(network(buffers.device_input))
            mark(2)
            for host, device in zip(buffers.host_outputs, outputs):
                host.copy_(device, non_blocking=True)
            mark(3)
            stream.synchronize()
        stages = {}
        if timed:  # CUDA events on the engine's stream: device time of each stage, in seconds
            stages = {
                "h2d": events[0].elapsed_time(events[1]) / 1e3,
                "infer": events[1].elapsed_time(events[2]) / 1e3,
                "d2h": events[2].elapsed_time(events[3]) / 1e3,
            }
        return _output(tuple(h.clone() for h in buffers.host_outputs), stages)

    def close(self) -> None:
        self.model = None  # type: ignore[assignment]
        self.network = None
        self._uint8_network = None
        self._captured.clear()
        self._frame_buffers.clear()


def _as_tuple(outputs: Any) -> tuple[Any, ...]:
    return tuple(outputs) if isinstance(outputs, (tuple, list)) else (outputs,)


def _output(outputs: tuple[Any, ...], stages: dict[str, float]) -> EngineOutput:
    predictions = outputs[0].float().cpu().numpy()  # (B, R, No)
    counts = outputs[1].cpu().numpy().astype(np.int64) if len(outputs) > 1 else None  # (B,)
    return EngineOutput(predictions=predictions, num_candidates=counts, stages=stages)


def load(
    path: str | Path,
    *,
    device: str = "cpu",
    precision: str = "fp32",
    preset: str | None = None,
    input_format: str = "float",
    max_candidates: int | None = None,
    candidate_floor: float = DEFAULT_CANDIDATE_FLOOR,
    cuda_graph: bool | None = None,
) -> TorchEngine:
    """Open a checkpoint (official KAPAO, kapao-edge, or a bundled model name) as an engine.

    ``input_format`` / ``max_candidates`` give it the I/O an exported file would have
    (``kapao-edge export --input uint8 --max-candidates K``).
    """
    from kapao_edge.model import read_checkpoint
    from kapao_edge.utils.io import sha256_file

    io = IoOptions(input_format, max_candidates, candidate_floor)
    loaded = read_checkpoint(path, preset=preset)
    model = loaded.model
    model.fuse()
    digest = sha256_file(path) if Path(path).is_file() else None
    return TorchEngine(model, device=device, precision=precision, source_sha256=digest, io=io, cuda_graph=cuda_graph,
                       imgsz=loaded.documented_imgsz)
