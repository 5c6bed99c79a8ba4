"""torch -> ONNX export: exact graph rewrites, metadata, slimming, checking and verification."""

from kapao_edge.export.metadata import METADATA_KEY, metadata_json, parse_metadata, read_onnx_metadata
from kapao_edge.export.onnx_export import DEFAULT_OPSET, DYNAMIC_MODES, ExportReport, export_onnx
from kapao_edge.export.rewrites import RewriteReport, apply_rewrites

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
