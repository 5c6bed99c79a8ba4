"""Reduced precision: calibration images and caches, FP16 conversion, INT8 Q/DQ, and the Q/DQ lint.

Everything here works on ONNX files and runs on ONNX Runtime's CPU provider, so accuracy of FP16 and
INT8 variants is measured without a GPU; the files are what TensorRT builds as strongly typed networks.
"""

from kapao_edge.calibration.cache import METHODS, CalibrationStats, calibrate
from kapao_edge.calibration.fp16 import Fp16Report, check_strong_types, convert_to_fp16, fp32_decode_ok
from kapao_edge.calibration.int8 import TARGETS, default_exclusions, quantize_from_stats
from kapao_edge.calibration.lint import assert_qdq_ok, lint_qdq
from kapao_edge.calibration.pipeline import PRECISIONS, QuantizeReport, quantize_onnx
from kapao_edge.calibration.reader import CalibrationImages, InputSpec, collect_image_paths

__all__ = [
    "METHODS",
    "PRECISIONS",
    "TARGETS",
    "CalibrationImages",
    "CalibrationStats",
    "Fp16Report",
    "InputSpec",
    "QuantizeReport",
    "assert_qdq_ok",
    "calibrate",
    "check_strong_types",
    "collect_image_paths",
    "convert_to_fp16",
    "default_exclusions",
    "fp32_decode_ok",
    "lint_qdq",
    "quantize_from_stats",
    "quantize_onnx",
]
