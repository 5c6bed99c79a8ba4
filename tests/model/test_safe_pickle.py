"""The allow-listed unpickler: plain data and module records pass, every other global is refused."""

from __future__ import annotations

import collections
import pickle

import pytest
import torch

from kapao_edge.errors import UnsafeCheckpointError
from kapao_edge.model import safe_pickle


class _Call:
    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_plain_data_round_trips(protocol: int) -> None:
    value = {
        "a": [1, 2.5, "x", None, True],
        "b": collections.OrderedDict(k=(1, 2)),
        "c": {3, 4},
        "d": b"\x00\xff",
    }
    assert safe_pickle.loads(pickle.dumps(value, protocol=protocol)) == value


def test_torch_modules_become_inert_records() -> None:
    loaded = safe_pickle.loads(pickle.dumps(torch.nn.SiLU(), protocol=2))
    assert isinstance(loaded, safe_pickle.Record) and not isinstance(loaded, torch.nn.Module)
    assert loaded.qualname == "torch.nn.modules.activation.SiLU"
    assert loaded.attrs["training"] is True


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        (_Call(torch.load, "weights.pt"), "torch.serialization.load"),
        (_Call(getattr, collections.OrderedDict(), "clear"), "builtins.getattr"),
        (_Call(torch.nn.modules.module.register_module_forward_hook, print), "register_module_forward_hook"),
        (_Call(collections.namedtuple, "T", "a"), "collections.namedtuple"),
    ],
)
def test_other_globals_are_refused(payload: _Call, refused: str) -> None:
    with pytest.raises(UnsafeCheckpointError, match=refused):
        safe_pickle.loads(pickle.dumps(payload, protocol=2))
