"""Deployment I/O in the graph: uint8 frames in, compact candidates out (kapao_edge.model.io)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kapao_edge.data.preprocess import to_tensor_batch
from kapao_edge.errors import InputError
from kapao_edge.export.verify import select_rows_numpy
from kapao_edge.io_options import MAX_CANDIDATES_LIMIT, IoOptions
from kapao_edge.model.io import select_candidates, uint8_frames_to_input


def test_uint8_input_is_bit_identical_to_the_host_conversion() -> None:
    frames = np.random.default_rng(0).integers(0, 256, (2, 64, 128, 3), dtype=np.uint8)  # (B, H, W, 3) BGR
    in_graph = uint8_frames_to_input(torch.from_numpy(frames)).numpy()  # (B, 3, H, W)
    assert in_graph.shape == (2, 3, 64, 128)
    np.testing.assert_array_equal(in_graph, to_tensor_batch(list(frames)))


def _predictions(objectness: np.ndarray, num_outputs: int = 57, seed: int = 0) -> np.ndarray:
    """(B, N, No) rows whose column 4 is ``objectness`` and the rest random, so rows are distinguishable."""
    rows = np.random.default_rng(seed).random((*objectness.shape, num_outputs), dtype=np.float32) * 100
    rows[..., 4] = objectness
    return rows


@pytest.mark.parametrize(
    ("num_rows", "k", "above"),
    [(50, 16, 5), (50, 16, 30), (10, 16, 10), (10, 16, 3), (200, 64, 0)],  # count < K, > K, K > N, none
)
def test_selection_keeps_the_best_rows_in_row_order_then_zeros(num_rows: int, k: int, above: int) -> None:
    rng = np.random.default_rng(num_rows + k + above)
    objectness = np.full((2, num_rows), 0.0005, dtype=np.float32)  # below the floor
    for b in range(2):
        chosen = rng.choice(num_rows, size=above, replace=False)
        objectness[b, chosen] = rng.uniform(0.002, 1.0, size=above).astype(np.float32)
    predictions = _predictions(objectness)  # (B, N, No)
    candidates, count = select_candidates(torch.from_numpy(predictions), k, 0.001)
    expected, expected_count = select_rows_numpy(predictions, k, 0.001)
    np.testing.assert_array_equal(count.numpy(), expected_count)
    np.testing.assert_array_equal(candidates.numpy(), expected)
    assert candidates.shape == (2, k, 57)
    kept = min(above, k)
    assert np.all(candidates.numpy()[:, kept:] == 0)  # zero rows only after the selected ones
    if above <= k:  # every row above the floor, in the order of the full output
        for b in range(2):
            np.testing.assert_array_equal(candidates.numpy()[b, :kept], predictions[b][objectness[b] > 0.001])


def test_selection_over_k_keeps_the_highest_objectness() -> None:
    objectness = np.linspace(0.01, 0.99, 40, dtype=np.float32)[None].copy()  # (1, 40)
    np.random.default_rng(3).shuffle(objectness[0])
    predictions = _predictions(objectness)
    candidates, count = select_candidates(torch.from_numpy(predictions), 8, 0.001)
    assert int(count[0]) == 40
    kept = candidates.numpy()[0, :, 4]
    np.testing.assert_array_equal(np.sort(kept), np.sort(objectness[0])[-8:])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(input_format="rgb"), "input format must be one of"),
        (dict(max_candidates=0), "max candidates must be an integer"),
        (dict(max_candidates=MAX_CANDIDATES_LIMIT + 1), "TensorRT's TopK limit"),
        (dict(max_candidates=True), "max candidates must be an integer"),
        (dict(candidate_floor=1.0), "candidate floor must be in"),
    ],
)
def test_bad_io_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(InputError, match=message):
        IoOptions(**options)
