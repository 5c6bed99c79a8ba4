"""Named model configurations (a small timm-style registry).

A config is a JSON-able dict in the shape of the official ``yolov5*6.yaml`` files: depth and width
multiples, anchors in pixels, and ``backbone`` / ``head`` lists of ``[from, repeats, module, args]``.
Every KAPAO size shares the P6 layout; only the two multiples differ.
"""

from __future__ import annotations

import copy
from typing import Any

from kapao_edge.errors import InputError

# Pixel anchors per level (w, h pairs): P3/8, P4/16, P5/32, P6/64.
P6_ANCHORS: list[list[int]] = [
    [19, 27, 44, 40, 38, 94],
    [96, 68, 86, 152, 180, 137],
    [140, 301, 303, 264, 238, 542],
    [436, 615, 739, 380, 925, 792],
]

# [from, repeats, module, args]; channel counts before the width multiple.
P6_BACKBONE: list[list[Any]] = [
    [-1, 1, "Focus", [64, 3]],  # 0  stride 2
    [-1, 1, "Conv", [128, 3, 2]],  # 1  stride 4
    [-1, 3, "C3", [128]],  # 2
    [-1, 1, "Conv", [256, 3, 2]],  # 3  stride 8
    [-1, 9, "C3", [256]],  # 4
    [-1, 1, "Conv", [512, 3, 2]],  # 5  stride 16
    [-1, 9, "C3", [512]],  # 6
    [-1, 1, "Conv", [768, 3, 2]],  # 7  stride 32
    [-1, 3, "C3", [768]],  # 8
    [-1, 1, "Conv", [1024, 3, 2]],  # 9  stride 64
    [-1, 1, "SPP", [1024, [3, 5, 7]]],  # 10
    [-1, 3, "C3", [1024, False]],  # 11
]

P6_HEAD: list[list[Any]] = [
    [-1, 1, "Conv", [768, 1, 1]],  # 12
    [-1, 1, "nn.Upsample", [None, 2, "nearest"]],  # 13
    [[-1, 8], 1, "Concat", [1]],  # 14
    [-1, 3, "C3", [768, False]],  # 15
    [-1, 1, "Conv", [512, 1, 1]],  # 16
    [-1, 1, "nn.Upsample", [None, 2, "nearest"]],  # 17
    [[-1, 6], 1, "Concat", [1]],  # 18
    [-1, 3, "C3", [512, False]],  # 19
    [-1, 1, "Conv", [256, 1, 1]],  # 20
    [-1, 1, "nn.Upsample", [None, 2, "nearest"]],  # 21
    [[-1, 4], 1, "Concat", [1]],  # 22
    [-1, 3, "C3", [256, False]],  # 23  P3/8 output
    [-1, 1, "Conv", [256, 3, 2]],  # 24
    [[-1, 20], 1, "Concat", [1]],  # 25
    [-1, 3, "C3", [512, False]],  # 26  P4/16 output
    [-1, 1, "Conv", [512, 3, 2]],  # 27
    [[-1, 16], 1, "Concat", [1]],  # 28
    [-1, 3, "C3", [768, False]],  # 29  P5/32 output
    [-1, 1, "Conv", [768, 3, 2]],  # 30
    [[-1, 12], 1, "Concat", [1]],  # 31
    [-1, 3, "C3", [1024, False]],  # 32  P6/64 output
    [[23, 26, 29, 32], 1, "Detect", ["nc", "anchors"]],  # 33
]

_REGISTRY: dict[str, dict[str, Any]] = {}


def register_config(name: str, depth_multiple: float, width_multiple: float, description: str) -> None:
    if name in _REGISTRY:
        raise ValueError(f"model config {name!r} is already registered")
    _REGISTRY[name] = {
        "name": name,
        "description": description,
        "depth_multiple": depth_multiple,
        "width_multiple": width_multiple,
        "anchors": P6_ANCHORS,
        "backbone": P6_BACKBONE,
        "head": P6_HEAD,
    }


register_config("kapao_s", 0.33, 0.50, "KAPAO-S (yolov5s6 layout), 12.6 M parameters")
register_config("kapao_m", 0.67, 0.75, "KAPAO-M (yolov5m6 layout), 35.8 M parameters")
register_config("kapao_l", 1.0, 1.0, "KAPAO-L (yolov5l6 layout), 77.0 M parameters")
register_config("kapao_n", 0.33, 0.25, "nano width, for a small bundled model")
register_config("kapao_tiny", 0.33, 0.125, "tiny width, the layout of the test fixture checkpoints")


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_config(name: str) -> dict[str, Any]:
    """A fresh deep copy of the named config, safe for the caller to modify."""
    try:
        return copy.deepcopy(_REGISTRY[name])
    except KeyError:
        raise InputError(f"unknown model {name!r}; known models: {', '.join(list_models())}") from None


def match_config_name(config: dict[str, Any]) -> str | None:
    """The registered name with this exact layout, anchors and multiples, if any (for loaded files)."""
    keys = ("anchors", "backbone", "head")
    for name, known in _REGISTRY.items():
        if (
            abs(known["depth_multiple"] - float(config["depth_multiple"])) < 1e-9
            and abs(known["width_multiple"] - float(config["width_multiple"])) < 1e-9
            and all(normalise_layout(known[k]) == normalise_layout(config[k]) for k in keys)
        ):
            return name
    return None


def normalise_layout(value: Any) -> Any:
    """Official YAML spelling to ours: lists for tuples, ``None`` for the string "None"."""
    if isinstance(value, (list, tuple)):
        return [normalise_layout(v) for v in value]
    return None if value == "None" else value
