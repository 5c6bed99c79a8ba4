"""torch -> ONNX export: exact graph rewrites, metadata, slimming, checking and verification.

The metadata helpers need no torch (``info``, ``quantize`` and the engines read ONNX metadata on
machines without it, such as a Jetson running only ONNX Runtime or TensorRT), so the exporter and
the rewrites are imported on first use.
"""

from typing import Any

from kapao_edge.export.metadata import METADATA_KEY, metadata_json, parse_metadata, read_onnx_metadata

_LAZY = {
    "DEFAULT_OPSET": "onnx_export",
    "DYNAMIC_MODES": "onnx_export",
    "ExportReport": "onnx_export",
    "export_onnx": "onnx_export",
    "RewriteReport": "rewrites",
    "apply_rewrites": "rewrites",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"kapao_edge.export.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'kapao_edge.export' has no attribute {name!r}")


__all__ = [
    "DEFAULT_OPSET",
    "DYNAMIC_MODES",
    "METADATA_KEY",
    "ExportReport",
    "RewriteReport",
    "apply_rewrites",
    "export_onnx",
    "metadata_json",
    "parse_metadata",
    "read_onnx_metadata",
]
