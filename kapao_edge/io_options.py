"""Deployment I/O options of a model file: uint8 frames in, compact candidates out.

Torch-free, so metadata can be checked where only ONNX Runtime or TensorRT is installed; the graph
side is ``kapao_edge.model.io``.
"""

from __future__ import annotations

from dataclasses import dataclass

from kapao_edge.errors import InputError

INPUT_FORMATS = ("float", "uint8")
# TensorRT's TopK takes k <= 3840, so a compact output that a plan can hold stays within it.
MAX_CANDIDATES_LIMIT = 3840
# Defaults chosen by measurement (docs/gpu.md): the floor is the lowest threshold any preset uses
# (val's conf_thres), so compact output is exact at every preset while the count fits in K.
DEFAULT_MAX_CANDIDATES = 1024
DEFAULT_CANDIDATE_FLOOR = 0.001


@dataclass(frozen=True)
class IoOptions:
    """How a deployed graph takes frames and returns rows; recorded in the file's metadata."""

    input_format: str = "float"
    max_candidates: int | None = None  # None: the full (B, N, No) output
    candidate_floor: float = DEFAULT_CANDIDATE_FLOOR

    def __post_init__(self) -> None:
        if self.input_format not in INPUT_FORMATS:
            raise InputError(f"input format must be one of {', '.join(INPUT_FORMATS)}, got {self.input_format!r}")
        if self.max_candidates is not None:
            k = self.max_candidates
            if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_CANDIDATES_LIMIT:
                raise InputError(
                    f"max candidates must be an integer in 1..{MAX_CANDIDATES_LIMIT} "
                    f"(TensorRT's TopK limit), got {k!r}"
                )
        floor = float(self.candidate_floor)
        if not 0.0 <= floor < 1.0:
            raise InputError(f"candidate floor must be in [0, 1), got {self.candidate_floor!r}")
        object.__setattr__(self, "candidate_floor", floor)

    @property
    def compact(self) -> bool:
        return self.max_candidates is not None

    @property
    def is_default(self) -> bool:
        return self.input_format == "float" and not self.compact
