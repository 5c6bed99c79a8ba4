"""Serving KAPAO through NVIDIA Triton Inference Server: ``kapao-edge serve`` and ``Client``.

The serving dependencies (nvidia-pytriton, tritonclient) are an optional extra, imported only when a
server or client is made, so ``import kapao_edge`` never needs them.
"""

from __future__ import annotations

from typing import Any

# Defaults shared by `serve`, `export --triton-repo`, the server, the repository writer and the
# client: one place, free of heavy imports so the CLI can show them in --help.
MODEL_NAME = "kapao"
DEFAULT_MAX_BATCH = 8  # largest batch Triton's dynamic batcher forms
DEFAULT_QUEUE_DELAY_US = 2000  # longest a request waits for others to batch with
DEFAULT_MAX_POSES = 300  # the post-processor's max_det: nothing it returns is cut off
DEFAULT_MAX_FRAME_SIDE = 4096

__all__ = ["Client", "RemotePipeline", "ServeConfig", "Server", "require_serving"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "RemotePipeline"):
        from kapao_edge.serving import client

        return getattr(client, name)
    if name in ("ServeConfig", "Server", "require_serving"):
        from kapao_edge.serving import server

        return getattr(server, name)
    raise AttributeError(f"module 'kapao_edge.serving' has no attribute {name!r}")
