"""Serving KAPAO through NVIDIA Triton Inference Server: ``kapao-edge serve`` and ``Client``.

The serving dependencies (nvidia-pytriton, tritonclient) are an optional extra, imported only when a
server or client is made, so ``import kapao_edge`` never needs them.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Client", "RemotePipeline", "ServeConfig", "Server", "require_serving"]


def __getattr__(name: str) -> Any:
    if name in ("Client", "RemotePipeline"):
        from kapao_edge.serving import client

        return getattr(client, name)
    if name in ("ServeConfig", "Server", "require_serving"):
        from kapao_edge.serving import server

        return getattr(server, name)
    raise AttributeError(f"module 'kapao_edge.serving' has no attribute {name!r}")
