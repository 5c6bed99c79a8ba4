"""Pre-processing: read images and video frames, letterbox them, and batch them for an engine."""

from kapao_edge.data.letterbox import PAD_COLOR, letterbox
from kapao_edge.data.preprocess import (
    MAX_STRIDE,
    LetterboxInfo,
    as_bgr,
    check_input_size,
    prepare,
    prepare_val,
    rect_batch_shape,
    resize_long_side,
    to_tensor_batch,
)
from kapao_edge.data.sources import (
    IMAGE_SUFFIXES,
    VIDEO_SUFFIXES,
    BadImageError,
    Frame,
    FrameSource,
    SourceError,
    count_frames,
    iter_frames,
    list_images,
    open_source,
    read_image,
    source_kind,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_STRIDE",
    "PAD_COLOR",
    "VIDEO_SUFFIXES",
    "BadImageError",
    "Frame",
    "FrameSource",
    "LetterboxInfo",
    "SourceError",
    "as_bgr",
    "check_input_size",
    "count_frames",
    "iter_frames",
    "letterbox",
    "list_images",
    "open_source",
    "prepare",
    "prepare_val",
    "read_image",
    "rect_batch_shape",
    "resize_long_side",
    "source_kind",
    "to_tensor_batch",
]
