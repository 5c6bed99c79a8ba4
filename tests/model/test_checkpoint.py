"""Checkpoint IO: official files, our format, unsafe and broken files, bundled names."""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
from pathlib import Path

import pytest
import torch

from kapao_edge.errors import CheckpointError, UnsafeCheckpointError
from kapao_edge.model import build_model, load_model, read_checkpoint, save_checkpoint
from kapao_edge.model import checkpoint as checkpoint_module


def _predict(model: torch.nn.Module, seed: int = 0) -> torch.Tensor:
    images = torch.rand(1, 3, 128, 192, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return model(images)


# --- official files ---------------------------------------------------------------------------


def test_official_fixture_loads(official_checkpoint: Path, fixture_name: str) -> None:
    loaded = read_checkpoint(official_checkpoint)
    model = loaded.model
    assert loaded.source_format == checkpoint_module.OFFICIAL_FORMAT
    assert model.preset.name == fixture_name
    assert model.config["name"] == "kapao_tiny"
    assert not model.training and not model.is_fused
    assert all(p.dtype == torch.float32 for p in model.parameters())  # the file is FP16
    assert model.names[0] == "person"
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(bn.eps == 1e-3 for bn in bns)


def test_load_model_fuses_and_moves(official_checkpoint: Path) -> None:
    model = load_model(official_checkpoint, device="cpu")
    assert model.is_fused and not model.training
    assert not load_model(official_checkpoint, fuse=False).is_fused


def test_preset_override(official_checkpoint: Path, fixture_name: str) -> None:
    assert load_model(official_checkpoint, preset=fixture_name).preset.name == fixture_name
    other = "crowdpose" if fixture_name == "coco" else "coco"
    with pytest.raises(CheckpointError, match=f"preset '{other}' has .* keypoints"):
        load_model(official_checkpoint, preset=other)


def test_ema_is_preferred_when_present(reference_dir, official_records, write_official, tmp_path) -> None:
    coco = official_records(reference_dir / "kapao_tiny_coco_random.pt")
    crowdpose = official_records(reference_dir / "kapao_tiny_crowdpose_random.pt")
    with_ema = write_official(tmp_path / "ema.pt", {**coco, "ema": crowdpose["model"]})
    assert load_model(with_ema).preset.name == "crowdpose"
    # the rewritten file without EMA still reads as the original
    plain = write_official(tmp_path / "plain.pt", coco)
    original = load_model(reference_dir / "kapao_tiny_coco_random.pt")
    torch.testing.assert_close(_predict(load_model(plain)), _predict(original))


def test_official_file_saved_after_fusing(reference_dir, official_records, write_official, tmp_path) -> None:
    """A file holding a fused model (biased convs, no BatchNorm) loads to the same function."""
    records = official_records(reference_dir / "kapao_tiny_coco_random.pt")
    original = load_model(reference_dir / "kapao_tiny_coco_random.pt")
    fused_state = original.state_dict()

    def strip_bn(record, prefix: str) -> None:
        modules = record.attrs["_modules"]
        if "bn" in modules and "conv" in modules:
            del modules["bn"]
            conv = modules["conv"].attrs["_parameters"]
            conv["weight"] = fused_state[prefix + "conv.weight"].half()
            conv["bias"] = fused_state[prefix + "conv.bias"].half()
        for name, child in modules.items():
            strip_bn(child, f"{prefix}{name}.")

    strip_bn(records["model"], "")
    path = write_official(tmp_path / "fused.pt", records)
    reloaded = load_model(path)
    torch.testing.assert_close(_predict(reloaded), _predict(original), rtol=1e-2, atol=1e-2)  # FP16 weights


def test_plain_yolov5_detector_is_not_kapao(
    reference_dir, official_records, write_official, tmp_path
) -> None:
    records = official_records(reference_dir / "kapao_tiny_coco_random.pt")
    records["model"].attrs["num_coords"] = 0
    path = write_official(tmp_path / "yolo.pt", records)
    with pytest.raises(CheckpointError, match="without keypoint outputs"):
        load_model(path)


# --- our format -----------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [False, True])
def test_round_trip_is_identical(tmp_path: Path, fused: bool) -> None:
    torch.manual_seed(0)
    model = build_model("kapao_tiny", "crowdpose")
    if fused:
        model.fuse()
    path = save_checkpoint(model, tmp_path / "m.pt", input_size=[256, 320], note="test")
    reloaded = load_model(path, fuse=False)
    assert reloaded.is_fused == fused
    assert reloaded.preset.name == "crowdpose" and reloaded.config["name"] == "kapao_tiny"
    assert torch.equal(_predict(reloaded), _predict(model))

    raw = torch.load(path, weights_only=True)  # no pickled code in our format
    assert raw["format"] == "kapao-edge/1" and raw["preset"] == "crowdpose"
    assert raw["meta"] == {"input_size": [256, 320], "note": "test"}
    assert raw["config"]["fused"] == fused
    assert all(isinstance(t, torch.Tensor) for t in raw["state_dict"].values())
    assert read_checkpoint(path).meta["input_size"] == [256, 320]


def test_round_trip_fp16(
    tmp_path: Path, official_checkpoint: Path, reference_io, assert_close_relative
) -> None:
    model = load_model(official_checkpoint, fuse=False)  # FP16-exact weights: halving loses nothing
    path = save_checkpoint(model, tmp_path / "half.pt", fp16=True)
    raw = torch.load(path, weights_only=True)
    assert raw["state_dict"]["model.0.conv.conv.weight"].dtype == torch.float16
    reloaded = load_model(path)
    with torch.no_grad():
        output = reloaded(torch.from_numpy(reference_io["input"]))
    assert_close_relative(output.numpy(), reference_io["output"])


def test_recommended_postprocessing_travels_with_the_checkpoint(tmp_path: Path) -> None:
    from kapao_edge.engines.torch_backend import metadata_for_model
    from kapao_edge.errors import InputError

    model = build_model("kapao_tiny")
    assert read_checkpoint(save_checkpoint(model, tmp_path / "plain.pt")).model.postprocess == {}
    path = save_checkpoint(model, tmp_path / "tuned.pt", postprocess={"overwrite_tol": 12})
    reloaded = read_checkpoint(path).model
    assert reloaded.postprocess == {"overwrite_tol": 12.0}
    assert metadata_for_model(reloaded).postprocess == {"overwrite_tol": 12.0}
    # re-saving does not copy it silently: a fine-tuned model must be tuned (and labelled) again
    assert "postprocess" not in torch.load(save_checkpoint(reloaded, tmp_path / "again.pt"), weights_only=True)["meta"]

    with pytest.raises(InputError, match="overwrite_tol must be >= 0"):
        save_checkpoint(model, tmp_path / "bad.pt", postprocess={"overwrite_tol": -3})
    assert not (tmp_path / "bad.pt").exists()
    payload = torch.load(path, weights_only=True)
    payload["meta"]["postprocess"] = {"fusion_radius": 5}
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(CheckpointError, match=r"edited\.pt: bad recommended post-processing: unknown"):
        read_checkpoint(tmp_path / "edited.pt")


def test_save_refuses_non_json_meta(tmp_path: Path) -> None:
    from kapao_edge.errors import InputError

    with pytest.raises(InputError, match="JSON"):
        save_checkpoint(build_model("kapao_tiny"), tmp_path / "m.pt", when=object())
    assert not (tmp_path / "m.pt").exists()


def test_save_is_atomic_on_failure(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "m.pt"
    target.write_bytes(b"previous")

    def broken_save(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(build_model("kapao_tiny"), target)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]


# --- unsafe and broken files ------------------------------------------------------------------------


class _Payload:
    def __init__(self, func, args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize(
    ("make", "refused"),
    [
        (lambda marker: _Payload(os.system, (f"touch {marker}",)), "system"),
        (lambda marker: _Payload(builtins.eval, (f"open({str(marker)!r}, 'w').close()",)), "builtins.eval"),
        (lambda marker: _Payload(subprocess.call, (["touch", str(marker)],)), "subprocess.call"),
    ],
)
def test_malicious_pickle_is_refused_without_side_effect(tmp_path: Path, make, refused: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"model": make(marker), "ema": None}, path)
    with pytest.raises(UnsafeCheckpointError, match=refused):
        load_model(path)
    assert not marker.exists()
    # the payload is real: an unrestricted unpickler does run it
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_malicious_object_nested_inside_a_model_is_refused(
    reference_dir, official_records, write_official, tmp_path
) -> None:
    marker = tmp_path / "pwned"
    records = official_records(reference_dir / "kapao_tiny_coco_random.pt")
    records["model"].attrs["hyp"] = {"lr0": _Payload(os.system, (f"touch {marker}",))}
    path = write_official(tmp_path / "nested.pt", records)
    with pytest.raises(UnsafeCheckpointError, match="system"):
        read_checkpoint(path)
    assert not marker.exists()


def test_legacy_plain_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "legacy.pt"
    path.write_bytes(pickle.dumps(_Payload(os.system, (f"touch {marker}",)), protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="system"):
        load_model(path)
    assert not marker.exists()


def test_truncated_file(tmp_path: Path, official_checkpoint: Path) -> None:
    data = official_checkpoint.read_bytes()
    path = tmp_path / "half.pt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated, corrupt or not a PyTorch checkpoint"):
        load_model(path)


def test_bare_state_dict_is_not_kapao(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(build_model("kapao_tiny").state_dict(), path)
    with pytest.raises(CheckpointError, match="not a KAPAO checkpoint.*bare state_dict"):
        load_model(path)


def test_resnet_like_checkpoint_is_not_kapao(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 7, 2, 3), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
    path = tmp_path / "resnet.pt"
    torch.save({"model": net.state_dict(), "epoch": 90, "arch": "resnet18"}, path)
    with pytest.raises(CheckpointError, match="'model' entry is a"):
        load_model(path)


def test_wrong_format_version(tmp_path: Path) -> None:
    path = tmp_path / "future.pt"
    torch.save({"format": "kapao-edge/9", "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="unsupported checkpoint format 'kapao-edge/9'"):
        load_model(path)


def test_weights_that_do_not_fit(tmp_path: Path) -> None:
    path = save_checkpoint(build_model("kapao_tiny"), tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    payload["config"]["width_multiple"] = 0.25
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="do not fit the architecture.*wrong shape"):
        load_model(path)


def test_missing_file_directory_and_unknown_name(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="is a directory"):
        load_model(tmp_path)
    monkeypatch.setattr(checkpoint_module, "ASSETS_DIR", tmp_path / "assets")
    with pytest.raises(CheckpointError, match="bundled models: none installed"):
        load_model("kapao_unknown")


def test_bundled_name_resolves(tmp_path: Path, monkeypatch) -> None:
    assets = tmp_path / "assets"
    monkeypatch.setattr(checkpoint_module, "ASSETS_DIR", assets)
    torch.manual_seed(1)
    model = build_model("kapao_tiny")
    save_checkpoint(model, assets / "kapao_tiny_demo.pt")
    assert checkpoint_module.list_assets() == ["kapao_tiny_demo"]
    monkeypatch.chdir(tmp_path)
    torch.testing.assert_close(_predict(load_model("kapao_tiny_demo", fuse=False)), _predict(model))
    with pytest.raises(CheckpointError, match="bundled models: kapao_tiny_demo"):
        load_model("kapao_other")
