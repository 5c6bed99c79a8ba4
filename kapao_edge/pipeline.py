"""Compatibility home of ``image_id_for``; ``predict``'s loop lives in ``kapao_edge.commands.predict``
and its writers in ``kapao_edge.outputs`` (the pipeline itself is ``kapao_edge.runtime.pipeline``)."""

from __future__ import annotations


def image_id_for(name: str, fallback: int) -> int:
    """COCO image id from a file name such as ``000000000785.jpg`` (785), else ``fallback``."""
    stem = name.rsplit(".", 1)[0]
    return int(stem) if stem.isdigit() else fallback
