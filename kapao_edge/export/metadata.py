"""The ``kapao_edge`` JSON entry in an ONNX file's metadata_props: what a loader needs to run it."""

from __future__ import annotations

import json
from typing import Any

from kapao_edge.engines.base import EngineMetadata
from kapao_edge.errors import EngineError, InputError

METADATA_KEY = "kapao_edge"


def metadata_json(metadata: EngineMetadata, **extra: Any) -> str:
    """Serialise engine metadata; ``extra`` (kp_flip, opset, rewrites ...) sits beside the fields."""
    data = metadata.to_dict()
    data.update(data.pop("extra") or {})
    data.update(extra)
    return json.dumps(data, sort_keys=True)


def parse_metadata(text: str, *, source: str = "model") -> EngineMetadata:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineError(f"{source}: the {METADATA_KEY!r} metadata is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise EngineError(f"{source}: the {METADATA_KEY!r} metadata is not a JSON object")
    try:
        return EngineMetadata.from_dict(data)
    except InputError as exc:
        raise EngineError(f"{source}: {exc}") from None


def set_onnx_metadata(model_proto: Any, text: str) -> None:
    """Replace (never duplicate) our entry in an onnx.ModelProto's metadata_props."""
    props = model_proto.metadata_props
    kept = [(p.key, p.value) for p in props if p.key != METADATA_KEY]
    del props[:]
    for key, value in kept:
        props.add(key=key, value=value)
    props.add(key=METADATA_KEY, value=text)


def read_onnx_metadata(model_proto: Any) -> str | None:
    for prop in model_proto.metadata_props:
        if prop.key == METADATA_KEY:
            return prop.value
    return None


def require_onnx_metadata(model_proto: Any, path: Any) -> dict[str, Any]:
    """Our JSON entry as a dict; files not written by ``kapao-edge export`` are refused with a hint."""
    text = read_onnx_metadata(model_proto)
    if text is None:
        raise InputError(f"{path} has no kapao_edge metadata: export it with `kapao-edge export` first")
    parse_metadata(text, source=str(path))  # malformed or incomplete entries fail here, not later
    return json.loads(text)
