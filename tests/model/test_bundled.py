"""The bundled model: loads by name, is small, and finds real poses in scenes it never saw."""

from __future__ import annotations

from pathlib import Path

from kapao_edge.model import load_model
from kapao_edge.model.checkpoint import ASSETS_DIR, list_assets


def test_bundled_model_is_installed_small_and_weights_only():
    import torch

    assert "bundled" in list_assets()
    path = ASSETS_DIR / "bundled.pt"
    assert path.stat().st_size <= 10 * 1024 * 1024
    payload = torch.load(path, weights_only=True)  # our format needs no pickled code
    assert payload["format"] == "kapao-edge/1"
    assert (ASSETS_DIR / "MODEL_CARD.md").is_file()


def test_bundled_model_loads_by_name():
    model = load_model("bundled")
    assert model.preset.name == "coco"
    assert not model.training


def test_bundled_model_detects_people_in_unseen_synthetic_scenes(tmp_path: Path):
    from kapao_edge.data.synth import generate_dataset
    from kapao_edge.engines.torch_backend import TorchEngine
    from kapao_edge.eval.validate import validate
    from kapao_edge.model import read_checkpoint
    from kapao_edge.postprocess import PostprocessConfig

    loaded = read_checkpoint("bundled")
    imgsz = loaded.imgsz  # its documented input size (448), run on scenes of its training size (320)
    assert (imgsz, loaded.scene_size) == (448, 320)
    annotations = generate_dataset(tmp_path / "scenes", 150, seed=987_654, imgsz=loaded.scene_size, workers=0)
    with TorchEngine(loaded.model.fuse()) as engine:
        result = validate(engine, annotations, imgsz=imgsz, progress=False)  # with its recommended fusion distance
        official = validate(engine, annotations, imgsz=imgsz, config=PostprocessConfig.official_val(), progress=False)
    # A floor well below what the model scores on these scenes (AP50 86.5 after its GPU training
    # stages), yet out of reach of a network that does not localise people and keypoints: random
    # weights score 0 here.
    assert result.metrics["AP50"] > 30.0, result.metrics
    # The fusion distance it recommends (12 px, chosen on its validation scenes) must beat the official
    # 50 px on new scenes too (AP 67.7 against 66.6 here; 63.8 against 62.6 on 500 held-out scenes).
    # 150 scenes (about 13 s), because on fewer the two tie or trade places (40 and 60 of these scenes:
    # within 0.02 of each other with the fourteenth stage): a retrained model must be tuned again.
    assert loaded.model.postprocess == {"overwrite_tol": 12.0}
    assert result.metrics["AP"] > official.metrics["AP"], (result.metrics, official.metrics)
