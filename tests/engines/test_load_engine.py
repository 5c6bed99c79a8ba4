"""`load_engine`: choosing a backend from the file."""

from __future__ import annotations

import pytest


def test_a_tensorrt_plan_gets_a_clear_not_yet_message(tmp_path) -> None:
    from kapao_edge.engines import load_engine
    from kapao_edge.errors import EngineError

    plan = tmp_path / "model.engine"
    plan.write_bytes(b"\0" * 16)
    with pytest.raises(EngineError, match="TensorRT plans cannot be run by this version yet"):
        load_engine(plan)
