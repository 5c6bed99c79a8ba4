"""The module tree equals the official one: every state_dict key, shape and parameter count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from kapao_edge.model import KapaoModel, get_config, list_models

OFFICIAL = [f"kapao_{size}_{preset}" for size in ("s", "m", "l") for preset in ("coco", "crowdpose")]


@pytest.fixture(scope="session")
def manifest(reference_dir: Path) -> dict:
    return json.loads((reference_dir / "architecture_manifest.json").read_text())


@pytest.mark.parametrize("key", OFFICIAL)
def test_state_dict_matches_official_manifest(key: str, manifest: dict) -> None:
    _, size, preset = key.split("_")
    model = KapaoModel(get_config(f"kapao_{size}"), preset)  # built once per key, dropped after
    expected = manifest[key]
    shapes = {name: list(t.shape) for name, t in model.state_dict().items()}
    assert list(shapes) == list(expected["state_dict"])  # same keys in the same order
    assert shapes == expected["state_dict"]
    assert model.num_parameters() == expected["params"]


def test_registry_lists_the_sizes() -> None:
    assert {"kapao_s", "kapao_m", "kapao_l", "kapao_n", "kapao_tiny"} <= set(list_models())
    assert list_models() == sorted(list_models())


def test_get_config_returns_an_independent_copy() -> None:
    first = get_config("kapao_s")
    first["head"][-1][0].append(99)
    assert get_config("kapao_s")["head"][-1][0] == [23, 26, 29, 32]
    json.dumps(first)  # JSON-able


def test_unknown_config_names_the_known_ones() -> None:
    from kapao_edge.errors import InputError

    with pytest.raises(InputError, match="kapao_s"):
        get_config("kapao_xl")


def test_model_attributes() -> None:
    model = KapaoModel(get_config("kapao_tiny"), "crowdpose")
    assert model.preset.name == "crowdpose" and model.num_keypoints == 14
    assert model.stride.tolist() == [8.0, 16.0, 32.0, 64.0]
    assert model.names[0] == "person" and len(model.names) == 15
    assert model.config["preset"] == "crowdpose" and model.config["name"] == "kapao_tiny"
    json.dumps(model.config)
    detect = model.detect
    assert detect.no == 48 and detect.nc == 15 and detect.num_coords == 28
    assert detect.anchor_grid.shape == (4, 1, 3, 1, 1, 2)
    # grid-unit anchors are the pixel anchors divided by each level's stride
    torch.testing.assert_close(detect.anchors * model.stride.view(-1, 1, 1), detect.anchor_grid.view(4, 3, 2))
    assert detect.anchor_grid[0].flatten().tolist() == [19, 27, 44, 40, 38, 94]
