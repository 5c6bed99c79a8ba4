"""The runtime: the one frame -> poses pipeline, overlapped stages and streams (and tracking)."""

from kapao_edge.runtime.pipeline import DeviceLetterbox, Letterbox, PosePipeline, PoseResult, ValResize

__all__ = ["DeviceLetterbox", "Letterbox", "PosePipeline", "PoseResult", "ValResize"]
