"""ONNX Runtime engine: CPU always, CUDA / TensorRT execution providers when installed and asked for."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from kapao_edge.engines.base import MAX_STRIDE, Engine, EngineMetadata, EngineOutput
from kapao_edge.errors import EngineError, InputError

# Short names users type -> execution provider names.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
}
# Preference order when several are asked for; CPU last, as the fallback for unsupported nodes.
_PROVIDER_ORDER = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
GRAPH_OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class OnnxRuntimeEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, session: Any, metadata: EngineMetadata, *, path: Path) -> None:
        super().__init__(metadata)
        self.session = session
        self.path = path
        self.input_name = session.get_inputs()[0].name
        self.output_names = [output.name for output in session.get_outputs()]

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers()) if self.session is not None else []

    @property
    def uses_gpu(self) -> bool:
        return any(p != "CPUExecutionProvider" for p in self.providers)

    @property
    def device(self) -> str:
        return "cuda" if self.uses_gpu else "cpu"

    def _run(self, inputs: np.ndarray, *, timed: bool) -> EngineOutput:
        if self.session is None:
            raise EngineError("this engine is closed")
        if self.uses_gpu:
            return self._run_bound(inputs)
        start = time.perf_counter()
        outputs = self.session.run(self.output_names, {self.input_name: inputs})
        stages = {"infer": time.perf_counter() - start} if timed else {}
        return _engine_output(outputs, stages)

    def _run_bound(self, inputs: np.ndarray) -> EngineOutput:
        """GPU providers: I/O binding with device-resident outputs; only what the graph returns is copied back."""
        import onnxruntime as ort

        binding = self.session.io_binding()
        t0 = time.perf_counter()
        device_input = ort.OrtValue.ortvalue_from_numpy(inputs, "cuda", 0)  # host -> device copy
        binding.bind_ortvalue_input(self.input_name, device_input)
        for name in self.output_names:
            binding.bind_output(name, "cuda", 0)
        t1 = time.perf_counter()
        self.session.run_with_iobinding(binding)  # returns once the device work is done
        t2 = time.perf_counter()
        outputs = binding.copy_outputs_to_cpu()  # (B, R, No) [, (B,)]
        t3 = time.perf_counter()
        return _engine_output(outputs, {"h2d": t1 - t0, "infer": t2 - t1, "d2h": t3 - t2})

    def close(self) -> None:
        self.session = None


def _engine_output(outputs: list[np.ndarray], stages: dict[str, float]) -> EngineOutput:
    counts = outputs[1].astype(np.int64) if len(outputs) > 1 else None  # (B,) compact files only
    return EngineOutput(predictions=outputs[0], num_candidates=counts, stages=stages)


def load(
    path: str | Path,
    *,
    providers: list[str] | str | None = None,
    threads: int | None = None,
    graph_optimization: str = "all",
    preset: str | None = None,
    imgsz: int | tuple[int, int] | list[int] | None = None,
    spinning: bool = True,
) -> OnnxRuntimeEngine:
    """Open an ONNX file. Its ``kapao_edge`` metadata describes it; for a foreign ONNX, ``preset``
    and/or ``imgsz`` describe it instead (the graph input gives the rest).

    ``spinning=False`` stops idle worker threads from busy-waiting after each run: slightly slower
    back-to-back calls, but the CPU stays free for pre/post-processing and other engines.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise EngineError(f"onnxruntime is not installed ({exc}); pip install onnxruntime") from None

    path = Path(path)
    if not path.is_file():
        raise EngineError(f"ONNX file not found: {path}")
    options = ort.SessionOptions()
    options.graph_optimization_level = _optimization_level(ort, graph_optimization)
    options.log_severity_level = 3  # warnings about unused initialisers are noise to a user
    if threads is not None:
        if threads < 1:
            raise InputError(f"threads must be >= 1, got {threads}")
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    chosen = _choose_providers(ort, providers)
    try:
        session = ort.InferenceSession(str(path), options, providers=chosen)
    except Exception as exc:  # InvalidProtobuf, Fail, NotImplemented ... all mean "cannot use this file"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"{path} is not a loadable ONNX model: {first}") from None
    metadata = _metadata(session, path, preset=preset, imgsz=imgsz)
    return OnnxRuntimeEngine(session, metadata, path=path)


def _optimization_level(ort: Any, name: str) -> Any:
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if name not in levels:
        raise InputError(f"graph_optimization must be one of {', '.join(levels)}, got {name!r}")
    return levels[name]


def _choose_providers(ort: Any, asked: list[str] | str | None) -> list[str]:
    """The asked-for providers that this onnxruntime build has, best first, CPU always last."""
    if isinstance(asked, str):
        asked = [part for part in asked.split(",") if part]
    names = {PROVIDER_ALIASES.get(str(p).lower(), str(p)) for p in (asked or [])}
    available = set(ort.get_available_providers())
    missing = sorted(n for n in names - available if n != "CPUExecutionProvider")
    if missing:
        warnings.warn(
            f"execution provider(s) {', '.join(missing)} not available in this onnxruntime build; "
            "running on the CPU provider",
            RuntimeWarning,
            stacklevel=3,
        )
    chosen = [p for p in _PROVIDER_ORDER if p in names and p in available and p != "CPUExecutionProvider"]
    return chosen + ["CPUExecutionProvider"]


def _metadata(session: Any, path: Path, *, preset: str | None, imgsz: Any) -> EngineMetadata:
    from kapao_edge.export.metadata import METADATA_KEY, parse_metadata

    custom = session.get_modelmeta().custom_metadata_map or {}
    if METADATA_KEY in custom:
        metadata = parse_metadata(custom[METADATA_KEY], source=str(path))
        _check_graph(session, metadata, path)
        return metadata
    if preset is None and imgsz is None:
        raise InputError(
            f"{path} has no kapao_edge metadata (it was not written by kapao-edge export); "
            "pass --preset/--imgsz to say which keypoint preset and input size it uses"
        )
    return _metadata_from_graph(session, path, preset=preset, imgsz=imgsz)


def _metadata_from_graph(session: Any, path: Path, *, preset: str | None, imgsz: Any) -> EngineMetadata:
    """Describe a foreign ONNX: the graph gives shapes, ``preset`` (or the column count) the keypoints."""
    from kapao_edge.model.configs import P6_ANCHORS
    from kapao_edge.presets import get_preset, preset_for_keypoints

    graph_input, graph_output = session.get_inputs()[0], session.get_outputs()[0]
    in_shape, out_shape = list(graph_input.shape), list(graph_output.shape)
    if len(in_shape) != 4 or len(out_shape) != 3:
        raise EngineError(
            f"{path}: expected one input (B, 3, H, W) and one output (B, N, No), got {in_shape} -> {out_shape}"
        )
    columns = out_shape[2] if isinstance(out_shape[2], int) else None
    if preset is not None:
        chosen = get_preset(preset)
    elif columns is not None and (columns - 6) % 3 == 0:
        chosen = preset_for_keypoints((columns - 6) // 3)
    else:
        raise InputError(f"{path}: cannot infer the keypoint preset from its output {out_shape}; pass --preset")
    if columns is not None and columns != chosen.num_outputs:
        raise InputError(
            f"{path}: its output has {columns} columns but preset {chosen.name!r} needs {chosen.num_outputs}"
        )
    input_shape: list[int | str] = [
        size if isinstance(size, int) else name for size, name in zip(in_shape, ["batch", 3, "height", "width"])
    ]
    fixed_hw = input_shape[2:] if all(isinstance(s, int) for s in input_shape[2:]) else None
    if imgsz is not None:
        from kapao_edge.data import check_input_size

        wanted = list(check_input_size(tuple(imgsz) if isinstance(imgsz, (list, tuple)) else imgsz))
        if fixed_hw is not None and wanted != fixed_hw:
            raise InputError(f"{path}: the graph takes {fixed_hw[0]}x{fixed_hw[1]} inputs, not {wanted[0]}x{wanted[1]}")
    return EngineMetadata(
        preset=chosen.name,
        num_keypoints=chosen.num_keypoints,
        strides=[8, 16, 32, 64],
        anchors=[list(map(float, level)) for level in P6_ANCHORS],
        input_shape=input_shape,
        extra={"metadata_source": "graph shapes and user options (no kapao_edge entry in the file)"},
    )


def _check_graph(session: Any, metadata: EngineMetadata, path: Path) -> None:
    """The metadata must describe the graph it travels with; a mismatch means an edited file."""
    in_shape = list(session.get_inputs()[0].shape)
    outputs = session.get_outputs()
    out_shape = list(outputs[0].shape)
    no = 3 * metadata.num_keypoints + 6
    expected_outputs = 2 if metadata.compact else 1
    if (
        len(in_shape) != 4
        or len(out_shape) != 3
        or (isinstance(out_shape[2], int) and out_shape[2] != no)
        or len(outputs) != expected_outputs
    ):
        raise EngineError(
            f"{path}: graph shapes {in_shape} -> {[list(o.shape) for o in outputs]} do not match its metadata "
            f"({metadata.describe_io()}; K={metadata.num_keypoints}, No={no})"
        )
    wanted_type = "tensor(uint8)" if metadata.input_format == "uint8" else "tensor(float)"
    if session.get_inputs()[0].type != wanted_type:
        raise EngineError(
            f"{path}: its input is {session.get_inputs()[0].type} but its metadata says {metadata.input_format} input"
        )
    for axis in (2, 3):
        size = metadata.input_shape[axis]
        if isinstance(size, int) and size % MAX_STRIDE:
            raise EngineError(f"{path}: metadata input size {size} is not a multiple of {MAX_STRIDE}")
