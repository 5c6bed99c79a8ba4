"""Checkpoint reading and writing: official KAPAO files, our own format, bundled model names.

Official files are read through ``safe_pickle`` (no code from the file runs); ours is a plain dict of
tensors and JSON-able values that ``torch.load(weights_only=True)`` reads as well.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from kapao_edge.errors import CheckpointError, InputError, UnsafeCheckpointError
from kapao_edge.model import safe_pickle
from kapao_edge.model.configs import get_config, match_config_name, normalise_layout
from kapao_edge.model.kapao import KapaoModel, init_fresh
from kapao_edge.postprocess.config import check_recommended
from kapao_edge.presets import Preset, get_preset, preset_for_keypoints
from kapao_edge.utils.io import atomic_path

FORMAT = "kapao-edge/1"
OFFICIAL_FORMAT = "official KAPAO (pickled models.yolo.Model)"
ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
_OFFICIAL_MODEL = "models.yolo.Model"


@dataclass
class LoadedCheckpoint:
    """A model rebuilt from a file (float32, CPU, eval mode; fused only if the file's weights are)."""

    model: KapaoModel
    source_format: str
    path: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def documented_imgsz(self) -> int | None:
        """The input size the file documents (a trained model's ``imgsz``), or None where it says nothing."""
        return int(self.meta["imgsz"]) if "imgsz" in self.meta else None

    @property
    def imgsz(self) -> int:
        """The documented input size; 320 where the file says nothing."""
        return self.documented_imgsz or 320

    @property
    def scene_size(self) -> int | None:
        """The size of the synthetic scenes it was trained on, where the file says: smaller than
        ``imgsz`` when it was fine-tuned on upscaled scenes (the bundled model), so demos and
        benchmarks render scenes of this size and run the network at its input size."""
        size = self.meta.get("scene_size")
        return None if size is None else int(size)


def build_model(name: str, preset: str | Preset = "coco") -> KapaoModel:
    """A freshly initialised model of a registered config, in eval mode (seed with torch.manual_seed)."""
    return init_fresh(KapaoModel(get_config(name), preset)).eval()


def load_model(
    path: str | os.PathLike,
    *,
    device: str | torch.device = "cpu",
    fuse: bool = True,
    preset: str | Preset | None = None,
) -> KapaoModel:
    """Load an official KAPAO file, a kapao-edge file or a bundled model name; eval mode, float32."""
    model = read_checkpoint(path, preset=preset).model
    if fuse:
        model.fuse()
    return model.to(device)


def list_assets() -> list[str]:
    """Names of bundled models (``kapao_edge/assets/<name>.pt``)."""
    if not ASSETS_DIR.is_dir():
        return []
    return sorted(p.stem for p in ASSETS_DIR.glob("*.pt"))


def resolve_checkpoint_path(path_or_name: str | os.PathLike) -> Path:
    path = Path(path_or_name)
    if path.is_dir():
        raise CheckpointError(f"{path} is a directory; expected a checkpoint file (.pt)")
    if path.is_file():
        return path
    text = str(path_or_name)
    if os.sep not in text and "/" not in text and not path.suffix:
        asset = ASSETS_DIR / f"{text}.pt"
        if asset.is_file():
            return asset
        known = ", ".join(list_assets()) or "none installed"
        raise CheckpointError(f"no checkpoint file or bundled model named {text!r}; bundled models: {known}")
    raise CheckpointError(f"checkpoint not found: {path}")


def read_checkpoint(
    path_or_name: str | os.PathLike, *, preset: str | Preset | None = None
) -> LoadedCheckpoint:
    """Open any supported checkpoint; ``preset`` overrides the one inferred from the file."""
    path = resolve_checkpoint_path(path_or_name)
    payload = _torch_load_safely(path)
    if isinstance(payload, dict) and "format" in payload:
        if payload["format"] != FORMAT:
            raise CheckpointError(
                f"{path}: unsupported checkpoint format {payload['format']!r} (this version reads {FORMAT!r})"
            )
        model, meta = _from_kapao_edge(payload, path, preset)
        source_format = FORMAT
    elif isinstance(payload, dict) and isinstance(_official_model(payload), safe_pickle.Record):
        model, meta = _from_official(_official_model(payload), path, preset)
        if isinstance(payload.get("epoch"), int):
            meta["epoch"] = payload["epoch"]
        source_format = OFFICIAL_FORMAT
    else:
        raise CheckpointError(f"{path} is not a KAPAO checkpoint: {_describe(payload)}")
    try:
        model.postprocess = check_recommended(meta.get("postprocess"), source=str(path))
    except InputError as exc:
        raise CheckpointError(str(exc)) from None
    return LoadedCheckpoint(model=model.float().eval(), source_format=source_format, path=path, meta=meta)


def _official_model(payload: dict[str, Any]) -> Any:
    """Like the official loader: the EMA weights when the file has them, else ``model``."""
    return payload.get("ema") or payload.get("model")


def save_checkpoint(model: KapaoModel, path: str | os.PathLike, *, fp16: bool = False, **meta: Any) -> Path:
    """Write the kapao-edge format atomically; ``meta`` must be JSON-able (input size, notes, ...).

    ``postprocess={...}`` records the post-processing values the model was tuned with; every engine
    made from the file recommends them (``EngineMetadata.postprocess``).
    """
    try:
        meta = json.loads(json.dumps(meta))
    except (TypeError, ValueError) as exc:
        raise InputError(f"checkpoint metadata must be JSON-serialisable: {exc}") from None
    if "postprocess" in meta:
        meta["postprocess"] = check_recommended(meta["postprocess"], source="save_checkpoint")
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu().clone()
        state[key] = tensor.half() if fp16 and tensor.is_floating_point() else tensor
    payload = {
        "format": FORMAT,
        "config": {**json.loads(json.dumps(model.config)), "fused": model.is_fused},
        "preset": model.preset.name,
        "state_dict": state,
        "meta": meta,
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        torch.save(payload, tmp)
    return target


def _torch_load_safely(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", pickle_module=safe_pickle, weights_only=False)
    except UnsafeCheckpointError as exc:
        raise UnsafeCheckpointError(f"{path}: {exc}") from None
    except Exception as exc:  # torch, zipfile and pickle each raise their own kinds for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"cannot read {path}: the file is truncated, corrupt or not a PyTorch checkpoint ({reason})"
        ) from None


def _from_kapao_edge(
    payload: dict[str, Any], path: Path, preset: str | Preset | None
) -> tuple[KapaoModel, dict[str, Any]]:
    try:
        config, state, saved_preset = dict(payload["config"]), payload["state_dict"], payload["preset"]
    except KeyError as exc:
        raise CheckpointError(f"{path}: kapao-edge checkpoint lacks the {exc.args[0]!r} entry") from None
    try:
        saved_k = get_preset(saved_preset).num_keypoints
    except InputError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    chosen = _choose_preset(saved_k, preset, path)
    fused = bool(config.pop("fused", False))
    model = _build_from_config(config, chosen, path)
    if fused:
        model.fuse()
    _load_weights(model, state, path)
    return model, dict(payload.get("meta") or {})


def _from_official(
    record: safe_pickle.Record, path: Path, preset: str | Preset | None
) -> tuple[KapaoModel, dict[str, Any]]:
    if record.qualname != _OFFICIAL_MODEL:
        raise CheckpointError(f"{path}: its model is a {record.qualname}, not a KAPAO {_OFFICIAL_MODEL}")
    attrs = record.attrs
    yaml = attrs.get("yaml")
    num_coords = int(attrs.get("num_coords") or 0)
    if not isinstance(yaml, dict) or not {"backbone", "head", "anchors"} <= yaml.keys():
        raise CheckpointError(f"{path}: the pickled model has no usable 'yaml' config")
    if num_coords <= 0 or num_coords % 2:
        raise CheckpointError(
            f"{path}: a YOLOv5 model without keypoint outputs (num_coords={num_coords}), "
            "not a KAPAO pose model"
        )
    chosen = _choose_preset(num_coords // 2, preset, path)
    nc = attrs.get("nc")
    if nc is not None and int(nc) != chosen.num_classes:
        raise CheckpointError(
            f"{path}: nc={nc} does not match {num_coords // 2} keypoints (expected {chosen.num_classes})"
        )
    config = {
        "depth_multiple": float(yaml["depth_multiple"]),
        "width_multiple": float(yaml["width_multiple"]),
        "anchors": normalise_layout(yaml["anchors"]),
        "backbone": normalise_layout(yaml["backbone"]),
        "head": normalise_layout(yaml["head"]),
    }
    config["name"] = match_config_name(config) or "custom"
    model = _build_from_config(config, chosen, path)
    state, bn_eps = _collect_state(record)
    if not any(key.endswith(".bn.weight") for key in state):
        model.fuse()  # a file saved after fusing: biased convs, no BatchNorm
    _load_weights(model, state, path)
    modules = dict(model.named_modules())
    for name, eps in bn_eps.items():  # eps is not in a state_dict; the pickled module has it
        if isinstance(modules.get(name), torch.nn.BatchNorm2d):
            modules[name].eps = eps
    if isinstance(attrs.get("names"), list) and len(attrs["names"]) == chosen.num_classes:
        model.names = [str(n) for n in attrs["names"]]
    return model, {}


def _collect_state(root: safe_pickle.Record) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """state_dict and BatchNorm eps from a tree of module records, walking _parameters/_buffers/_modules."""
    state: dict[str, torch.Tensor] = {}
    bn_eps: dict[str, float] = {}

    def walk(record: safe_pickle.Record, prefix: str) -> None:
        attrs = record.attrs
        if record.qualname.endswith("BatchNorm2d") and isinstance(attrs.get("eps"), float):
            bn_eps[prefix.rstrip(".")] = attrs["eps"]
        skip = attrs.get("_non_persistent_buffers_set") or set()
        for group in ("_parameters", "_buffers"):
            for name, tensor in (attrs.get(group) or {}).items():
                if isinstance(tensor, torch.Tensor) and name not in skip:
                    state[prefix + name] = tensor.detach()
        for name, child in (attrs.get("_modules") or {}).items():
            if isinstance(child, safe_pickle.Record):
                walk(child, f"{prefix}{name}.")

    walk(root, "")
    return state, bn_eps


def _choose_preset(num_keypoints: int, override: str | Preset | None, path: Path) -> Preset:
    if override is not None:
        chosen = get_preset(override)
        if chosen.num_keypoints != num_keypoints:
            raise CheckpointError(
                f"{path}: preset {chosen.name!r} has {chosen.num_keypoints} keypoints but the checkpoint "
                f"predicts {num_keypoints}"
            )
        return chosen
    try:
        return preset_for_keypoints(num_keypoints)
    except InputError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def _build_from_config(config: dict[str, Any], preset: Preset, path: Path) -> KapaoModel:
    try:
        return KapaoModel(config, preset)
    except InputError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"{path}: the model config in the file is malformed ({exc!r})") from None


def _load_weights(model: KapaoModel, state: dict[str, Any], path: Path) -> None:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: the weights are not a dict of tensors")
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        problems = (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape))
        details = "; ".join(
            f"{label}: {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''} ({len(keys)})"
            for label, keys in problems
            if keys
        )
        raise CheckpointError(
            f"{path}: the weights do not fit the architecture its config describes ({details})"
        )
    converted = {k: v.to(expected[k].dtype) for k, v in state.items()}  # FP16 file -> float32 model
    model.load_state_dict(converted, strict=True)


def _describe(payload: Any) -> str:
    expected = (
        f"expected an official KAPAO file (a dict whose 'model' is a pickled {_OFFICIAL_MODEL}) "
        f"or a kapao-edge file (format {FORMAT!r})"
    )
    if isinstance(payload, dict):
        keys = [str(k) for k in list(payload)[:4]]
        more = " ..." if len(payload) > 4 else ""
        if payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
            kind = f"a bare state_dict of {len(payload)} tensors ({', '.join(keys)}{more})"
        elif "model" in payload:
            kind = f"a dict whose 'model' entry is a {type(payload['model']).__name__}"
        else:
            kind = f"a dict with keys {', '.join(keys)}{more}" if keys else "an empty dict"
        return f"{expected}; found {kind}"
    return f"{expected}; found a {type(payload).__name__}"
