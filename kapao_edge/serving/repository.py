"""A standard Triton model repository for a GPU server: engine, post-processing and an ensemble.

    kapao_engine/       the exported ONNX (onnxruntime backend) or a TensorRT plan (tensorrt_plan),
                        dynamic batching, GPU instance group
    kapao_postprocess/  Python backend running kapao-edge's C++ post-processor (triton_postprocess.py)
    kapao/              ensemble: letterboxed uint8 frames + original sizes -> poses

Clients of ``kapao`` letterbox on their side (``kapao_edge.data.letterbox``) and send ``images``
(B, H, W, 3) uint8 BGR and ``original_hw`` (B, 2) int32; answers are fixed-size pose rows plus a
count, in original-frame pixels, as ``kapao-edge serve`` returns. ``config.pbtxt`` files are written
as text and, where tritonclient is installed, parsed with Triton's own model-config protobuf.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kapao_edge.errors import InputError
from kapao_edge.serving import DEFAULT_MAX_BATCH, DEFAULT_MAX_POSES, DEFAULT_QUEUE_DELAY_US

ENGINE, POSTPROCESS, ENSEMBLE = "kapao_engine", "kapao_postprocess", "kapao"
BACKENDS = ("onnxruntime", "tensorrt")
_TYPES = {1: "TYPE_FP32", 2: "TYPE_UINT8", 10: "TYPE_FP16", 6: "TYPE_INT32", 7: "TYPE_INT64"}  # ONNX -> Triton


@dataclass(frozen=True)
class RepositoryOptions:
    backend: str = "onnxruntime"
    max_batch: int = DEFAULT_MAX_BATCH
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    instances: int = 1
    max_poses: int = DEFAULT_MAX_POSES


def _dims(values: list[Any]) -> str:
    return "[ " + ", ".join(str(v) for v in values) + " ]"


def _tensor(name: str, data_type: str, dims: list[Any]) -> str:
    return f'  {{\n    name: "{name}"\n    data_type: {data_type}\n    dims: {_dims(dims)}\n  }}'


def _tensors(kind: str, items: list[tuple[str, str, list[Any]]]) -> str:
    return f"{kind} [\n" + ",\n".join(_tensor(*item) for item in items) + "\n]\n"


def _onnx_io(onnx_path: Path) -> tuple[tuple[str, str, list[int]], list[tuple[str, str, list[int]]]]:
    """(input, outputs) of the exported graph as (name, Triton type, dims without the batch axis)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph

    def describe(value) -> tuple[str, str, list[int]]:
        tensor = value.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim][1:]
        return value.name, _TYPES.get(tensor.elem_type, "TYPE_FP32"), dims

    return describe(graph.input[0]), [describe(output) for output in graph.output]


def engine_config(onnx_path: Path, options: RepositoryOptions) -> str:
    (name, data_type, dims), outputs = _onnx_io(onnx_path)
    platform = "onnxruntime_onnx" if options.backend == "onnxruntime" else "tensorrt_plan"
    filename = "model.onnx" if options.backend == "onnxruntime" else "model.plan"
    return (
        f'name: "{ENGINE}"\nplatform: "{platform}"\ndefault_model_filename: "{filename}"\n'
        f"max_batch_size: {options.max_batch}\n"
        + _tensors("input", [(name, data_type, dims)])
        + _tensors("output", outputs)
        + f"dynamic_batching {{\n  max_queue_delay_microseconds: {options.queue_delay_us}\n}}\n"
        + f"instance_group [\n  {{\n    count: {options.instances}\n    kind: KIND_GPU\n  }}\n]\n"
    )


def _pose_outputs(num_keypoints: int, max_poses: int) -> list[tuple[str, str, list[int]]]:
    return [("keypoints", "TYPE_FP32", [max_poses, num_keypoints, 3]), ("boxes", "TYPE_FP32", [max_poses, 4]),
            ("scores", "TYPE_FP32", [max_poses]), ("count", "TYPE_INT32", [1])]


def postprocess_config(num_outputs: int, num_keypoints: int, postprocess: dict[str, Any], options: RepositoryOptions) -> str:
    parameters = {"postprocess": json.dumps(postprocess, sort_keys=True), "max_poses": str(options.max_poses),
                  "backend": "cpp"}
    text = (
        f'name: "{POSTPROCESS}"\nbackend: "python"\nmax_batch_size: {options.max_batch}\n'
        + _tensors("input", [("predictions", "TYPE_FP32", [-1, num_outputs]), ("images", "TYPE_UINT8", [-1, -1, 3]),
                             ("original_hw", "TYPE_INT32", [2])])
        + _tensors("output", _pose_outputs(num_keypoints, options.max_poses))
        + f"dynamic_batching {{\n  max_queue_delay_microseconds: {options.queue_delay_us}\n}}\n"
        + f"instance_group [\n  {{\n    count: {options.instances}\n    kind: KIND_CPU\n  }}\n]\n"
    )
    for key, value in parameters.items():
        text += f"parameters {{\n  key: \"{key}\"\n  value {{\n    string_value: {json.dumps(value)}\n  }}\n}}\n"
    return text


def ensemble_config(engine_input: str, engine_output: str, num_keypoints: int, options: RepositoryOptions) -> str:
    outputs = _pose_outputs(num_keypoints, options.max_poses)

    def maps(kind: str, pairs: list[tuple[str, str]]) -> str:
        return "".join(f'      {kind} {{\n        key: "{key}"\n        value: "{value}"\n      }}\n' for key, value in pairs)

    steps = (
        f'    {{\n      model_name: "{ENGINE}"\n      model_version: -1\n'
        + maps("input_map", [(engine_input, "images")]) + maps("output_map", [(engine_output, "predictions")])
        + f'    }},\n    {{\n      model_name: "{POSTPROCESS}"\n      model_version: -1\n'
        + maps("input_map", [("predictions", "predictions"), ("images", "images"), ("original_hw", "original_hw")])
        + maps("output_map", [(name, name) for name, _, _ in outputs]) + "    }\n"
    )
    return (
        f'name: "{ENSEMBLE}"\nplatform: "ensemble"\nmax_batch_size: {options.max_batch}\n'
        + _tensors("input", [("images", "TYPE_UINT8", [-1, -1, 3]), ("original_hw", "TYPE_INT32", [2])])
        + _tensors("output", outputs)
        + "ensemble_scheduling {\n  step [\n" + steps + "  ]\n}\n"
    )


def parse_config(text: str) -> Any:
    """``config.pbtxt`` text -> Triton's ModelConfig message (tritonclient's copy of the protobuf)."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    return text_format.Parse(text, model_config_pb2.ModelConfig())


def check_target(target: Path) -> None:
    """The repository goes into a new or empty folder: never mixed with an earlier one."""
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"--triton-repo {target} exists and is not an empty folder; choose a new path")


def write_repository(onnx_path: str | os.PathLike, target: str | os.PathLike, *, preset_keypoints: int,
                     postprocess: dict[str, Any], options: RepositoryOptions = RepositoryOptions()) -> Path:
    """Write the three models into ``target`` (a fresh or empty folder), all or nothing."""
    onnx_path, target = Path(onnx_path), Path(target)
    if options.backend not in BACKENDS:
        raise InputError(f"--triton-backend must be one of {', '.join(BACKENDS)}, got {options.backend!r}")
    for name, value in (("--max-batch", options.max_batch), ("--instances", options.instances), ("--max-poses", options.max_poses)):
        if value < 1:
            raise InputError(f"{name} must be >= 1, got {value}")
    check_target(target)
    (input_name, input_type, _), outputs = _onnx_io(onnx_path)
    if input_type != "TYPE_UINT8":
        raise InputError("--triton-repo needs a uint8-input graph (clients send letterboxed uint8 frames): add --input uint8")
    if len(outputs) != 1:
        raise InputError("--triton-repo needs the full-output graph: drop --max-candidates")
    num_outputs = outputs[0][2][-1]
    configs = {
        ENGINE: engine_config(onnx_path, options),
        POSTPROCESS: postprocess_config(num_outputs, preset_keypoints, postprocess, options),
        ENSEMBLE: ensemble_config(input_name, outputs[0][0], preset_keypoints, options),
    }
    try:
        for text in configs.values():
            parse_config(text)
    except ImportError:  # tritonclient absent: the tests parse them where it is installed
        pass
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for name, text in configs.items():
            (staging / name / "1").mkdir(parents=True)
            (staging / name / "config.pbtxt").write_text(text)
        shutil.copyfile(onnx_path, staging / ENGINE / "1" / "model.onnx")
        shutil.copyfile(Path(__file__).with_name("triton_postprocess.py"), staging / POSTPROCESS / "1" / "model.py")
        if target.exists():
            target.rmdir()
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
