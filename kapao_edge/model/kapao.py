"""The KAPAO network: a YOLOv5-P6 detector whose head predicts pose objects and keypoint objects.

The module tree is built from a config the way the official ``parse_model`` builds it (``model.0`` ..
``model.33``), so state_dict keys and shapes equal the official ones and official weights load as-is.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from kapao_edge.errors import InputError
from kapao_edge.model.modules import C3, SPP, Bottleneck, Concat, Conv, Detect, Focus
from kapao_edge.presets import Preset, get_preset

# Modules with (c_in, c_out, *args) constructors whose c_out scales with the width multiple.
_CHANNEL_MODULES: dict[str, type[nn.Module]] = {
    "Focus": Focus,
    "Conv": Conv,
    "C3": C3,
    "SPP": SPP,
    "Bottleneck": Bottleneck,
}
_REPEATED_INSIDE = {"C3"}  # the repeat count becomes a constructor argument, not a Sequential
_KNOWN_MODULES = set(_CHANNEL_MODULES) | {"nn.Upsample", "Concat", "Detect"}


def make_divisible(x: float, divisor: int) -> int:
    return math.ceil(x / divisor) * divisor


def scaled_repeats(n: int, depth_multiple: float) -> int:
    return max(round(n * depth_multiple), 1) if n > 1 else n


class KapaoModel(nn.Module):
    """KAPAO pose network.

    Eval mode: images (B, 3, H, W) float32 in [0, 1], H and W multiples of 64 -> decoded predictions
    (B, N, No), columns [cx, cy, w, h, obj, cls_0..cls_K, k0x, k0y, ...] in input pixels.
    Training mode: the per-level raw tensors (B, na, H/s, W/s, No), for a loss.
    """

    def __init__(self, config: dict[str, Any], preset: str | Preset = "coco") -> None:
        super().__init__()
        self.preset = get_preset(preset)
        self.num_keypoints = self.preset.num_keypoints
        self.names = list(self.preset.class_names)
        self.config = {**copy.deepcopy(config), "preset": self.preset.name}
        self.config.setdefault("name", "custom")
        self.model, self.save, strides = _build_layers(self.config, self.preset)
        self.stride = torch.tensor(strides, dtype=torch.float32)  # (nl,) plain attribute, as official
        self.max_stride = int(max(strides))
        # Post-processing values this trained model recommends (see PostprocessConfig.named); a
        # checkpoint's meta["postprocess"] fills it, save_checkpoint writes it only when told to.
        self.postprocess: dict[str, Any] = {}

    @property
    def detect(self) -> Detect:
        return self.model[-1]  # type: ignore[return-value]

    @property
    def is_fused(self) -> bool:
        return not any(isinstance(m, Conv) and m.bn is not None for m in self.modules())

    def forward(self, images: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if not _is_tracing():
            self._check_input(images)
        outputs: list[torch.Tensor | None] = []
        x: Any = images
        for layer in self.model:
            if layer.f != -1:
                if isinstance(layer.f, int):
                    x = outputs[layer.f]
                else:
                    x = [x if j == -1 else outputs[j] for j in layer.f]
            x = layer(x)
            outputs.append(x if layer.i in self.save else None)
        return x

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Raw per-level head outputs (B, na, H/s, W/s, No) whatever the mode; for exporters."""
        was_training = self.detect.training
        self.detect.train()
        try:
            return self.forward(images)  # type: ignore[return-value]
        finally:
            self.detect.train(was_training)

    def fuse(self) -> KapaoModel:
        """Fold every BatchNorm into its convolution (exact for eval mode; do it before deployment)."""
        for module in self.modules():
            if isinstance(module, Conv):
                module.fuse()
        return self

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _check_input(self, images: torch.Tensor) -> None:
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1] != 3:
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
            raise InputError(f"expected images shaped (B, 3, H, W), got {shape}")
        h, w = images.shape[-2:]
        if h % self.max_stride or w % self.max_stride:
            raise InputError(
                f"input height and width must be multiples of {self.max_stride}, got {h}x{w}; "
                "letterbox or pad the images first"
            )


def _is_tracing() -> bool:
    """True under torch.jit.trace, ONNX export and torch.export / dynamo, where checks on symbolic
    shapes would either be baked in or break the trace."""
    if torch.jit.is_tracing() or torch.onnx.is_in_onnx_export():
        return True
    compiler = getattr(torch, "compiler", None)
    for check in ("is_exporting", "is_compiling"):
        fn = getattr(compiler, check, None)
        if fn is not None and fn():
            return True
    return False


def _build_layers(config: dict[str, Any], preset: Preset) -> tuple[nn.Sequential, list[int], list[int]]:
    """Mirror of the official parse_model: returns layers, indices whose outputs are reused, strides."""
    depth, width = float(config["depth_multiple"]), float(config["width_multiple"])
    anchors = config["anchors"]
    entries = list(config["backbone"]) + list(config["head"])
    channels: list[int] = [3]  # output channels per layer; the image before layer 0
    strides: list[int] = [1]  # output stride per layer, same indexing
    layers: list[nn.Module] = []
    save: list[int] = []
    detect_strides: list[int] = []
    for i, (source, repeats, module_name, args) in enumerate(entries):
        if module_name not in _KNOWN_MODULES:
            raise InputError(f"model config layer {i}: unsupported module {module_name!r}")
        args = list(args)
        sources = [source] if isinstance(source, int) else list(source)
        in_ch = [channels[s] if s == -1 else channels[s + 1] for s in sources]
        in_stride = [strides[s] if s == -1 else strides[s + 1] for s in sources]
        n = scaled_repeats(int(repeats), depth)

        if module_name in _CHANNEL_MODULES:
            c_in, c_out = in_ch[0], make_divisible(args[0] * width, 8)
            ctor_args: list[Any] = [c_in, c_out, *args[1:]]
            if module_name in _REPEATED_INSIDE:
                ctor_args.insert(2, n)
                n = 1
            if module_name == "SPP" and len(ctor_args) > 2:
                ctor_args[2] = tuple(ctor_args[2])
            make = functools.partial(_CHANNEL_MODULES[module_name], *ctor_args)
            out_stride = in_stride[0] * _layer_stride(module_name, args)
        elif module_name == "nn.Upsample":
            size, factor, mode = (args + [None, 2, "nearest"][len(args) :])[:3]
            size = None if size == "None" else size  # official YAML keeps None as a string
            c_out = in_ch[0]
            make = functools.partial(nn.Upsample, size=size, scale_factor=factor, mode=mode)
            out_stride = in_stride[0] // int(factor)
        elif module_name == "Concat":
            c_out = sum(in_ch)
            make = functools.partial(Concat, args[0] if args else 1)
            out_stride = in_stride[0]
        else:  # Detect
            level_anchors = anchors if args[1] == "anchors" else args[1]
            detect_strides = in_stride
            c_out = 0
            make = functools.partial(Detect, preset.num_classes, preset.num_coords, level_anchors, in_ch, in_stride)
            out_stride = 0

        layer = nn.Sequential(*(make() for _ in range(n))) if n > 1 else make()
        layer.i, layer.f = i, source  # type: ignore[assignment]
        layer.type = module_name  # type: ignore[assignment]
        save.extend(s % i for s in sources if s != -1)
        layers.append(layer)
        channels.append(c_out)
        strides.append(out_stride)

    if not isinstance(layers[-1], Detect):
        raise InputError("model config must end with a Detect layer")
    return nn.Sequential(*layers), sorted(save), detect_strides


def _layer_stride(module_name: str, args: Sequence[Any]) -> int:
    if module_name == "Focus":
        return 2 * (int(args[2]) if len(args) > 2 else 1)
    if module_name == "Conv":
        return int(args[2]) if len(args) > 2 else 1
    return 1


def init_fresh(model: KapaoModel) -> KapaoModel:
    """Official start-of-training state: BatchNorm eps/momentum and the head's bias priors."""
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eps, module.momentum = 1e-3, 0.03
    model.detect.initialize_biases()
    return model
