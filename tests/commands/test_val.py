"""`kapao-edge val` end to end: real images, real checkpoints, real pycocotools evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
from typer.testing import CliRunner

from kapao_edge.cli import app

runner = CliRunner()


def test_val_on_the_coco_sample_prints_metrics_and_saves_results(
    tmp_path: Path, coco_sample_dir: Path, posing_checkpoint: Path
):
    saved = tmp_path / "results.json"
    result = runner.invoke(app, [
        "val", "--weights", str(posing_checkpoint), "--data", str(coco_sample_dir / "person_keypoints_sample.json"),
        "--images", str(coco_sample_dir), "--imgsz", "320", "--save-json", str(saved),
    ])
    assert result.exit_code == 0, result.output
    for metric in ("AP", "AP50", "AR", "PCK@0.2"):
        assert metric in result.output
    results = json.loads(saved.read_text())
    assert results and all(r["category_id"] == 1 for r in results)


def test_val_handles_grayscale_images_crowd_regions_and_empty_persons(
    tmp_path: Path, coco_sample_dir: Path, posing_checkpoint: Path
):
    annotations = json.loads((coco_sample_dir / "person_keypoints_sample.json").read_text())
    images = tmp_path / "images"
    images.mkdir()
    for info in annotations["images"]:
        gray = cv2.imread(str(coco_sample_dir / info["file_name"]), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(images / info["file_name"]), gray)
    first = annotations["annotations"][0]
    annotations["annotations"].append({  # a crowd region, as COCO marks dense groups
        **first, "id": 10**9, "iscrowd": 1, "keypoints": [0] * 51, "num_keypoints": 0,
    })
    assert any(a["num_keypoints"] == 0 for a in annotations["annotations"])
    data = tmp_path / "person_keypoints.json"
    data.write_text(json.dumps(annotations))
    result = runner.invoke(app, [
        "val", "--weights", str(posing_checkpoint), "--data", str(data), "--images", str(images), "--imgsz", "256",
    ])
    assert result.exit_code == 0, result.output
    assert "AP" in result.output


def test_val_refuses_crowdpose_without_crowdposetools(
    tmp_path: Path, crowdpose_sample_dir: Path, reference_dir: Path
):
    result = runner.invoke(app, [
        "val", "--weights", str(reference_dir / "kapao_tiny_crowdpose_random.pt"),
        "--data", str(crowdpose_sample_dir / "crowdpose_sample.json"), "--images", str(crowdpose_sample_dir),
        "--imgsz", "256",
    ])
    try:
        import crowdposetools  # noqa: F401
    except ImportError:
        assert result.exit_code == 2
        assert "crowdposetools" in result.output
    else:
        assert result.exit_code == 0, result.output


def test_val_refuses_a_preset_mismatch(tmp_path: Path, coco_sample_dir: Path, reference_dir: Path):
    result = runner.invoke(app, [
        "val", "--weights", str(reference_dir / "kapao_tiny_crowdpose_random.pt"),
        "--data", str(coco_sample_dir / "person_keypoints_sample.json"), "--images", str(coco_sample_dir),
    ])
    assert result.exit_code == 2
    assert "keypoints" in result.output


def test_val_reports_a_missing_annotations_file(tmp_path: Path, posing_checkpoint: Path):
    result = runner.invoke(app, ["val", "--weights", str(posing_checkpoint), "--data", str(tmp_path / "none.json")])
    assert result.exit_code == 2
    assert "none.json" in result.output


def test_val_with_tta_runs_the_augmented_passes(coco_sample_dir: Path, posing_checkpoint: Path):
    result = runner.invoke(app, [
        "val", "--weights", str(posing_checkpoint), "--data", str(coco_sample_dir / "person_keypoints_sample.json"),
        "--images", str(coco_sample_dir), "--imgsz", "256", "--tta",
    ])
    assert result.exit_code == 0, result.output
    assert "TTA" in result.output and "PCK@0.2" in result.output


def test_val_with_tta_refuses_a_fixed_shape_engine(onnx_export, reference_dir: Path, coco_sample_dir: Path):
    fixed = onnx_export(reference_dir / "kapao_tiny_coco_random.pt", dynamic="none", imgsz=(256, 256))
    result = runner.invoke(app, [
        "val", "--engine", str(fixed), "--data", str(coco_sample_dir / "person_keypoints_sample.json"),
        "--images", str(coco_sample_dir), "--tta",
    ])
    assert result.exit_code == 2
    assert "dynamic height and width" in result.output


def test_val_applies_the_models_recommended_postprocessing_unless_overridden(tmp_path: Path, synth_set: Path):
    """The bundled checkpoint recommends a shorter fusion distance; `val` uses it, `--overwrite-tol` wins."""
    from kapao_edge.engines import load_engine
    from kapao_edge.eval.validate import validate
    from kapao_edge.postprocess import PostprocessConfig

    data = synth_set / "person_keypoints.json"
    with load_engine("bundled", backend="torch") as engine:
        recommended = engine.metadata.postprocess["overwrite_tol"]
        expected = {
            tol: json.loads(json.dumps(validate(
                engine, data, imgsz=256, config=PostprocessConfig.official_val(overwrite_tol=tol), progress=False,
            ).results))
            for tol in (recommended, 50.0)
        }
    assert recommended < 50.0 and expected[recommended] != expected[50.0]  # the choice matters on these scenes
    for options, tol in [([], recommended), (["--overwrite-tol", "50"], 50.0)]:
        saved = tmp_path / f"tol{tol:g}.json"
        result = runner.invoke(app, [
            "val", "--weights", "bundled", "--data", str(data), "--imgsz", "256", "--save-json", str(saved), *options,
        ])
        assert result.exit_code == 0, result.output
        assert json.loads(saved.read_text()) == expected[tol]
        said = "post-processing: val preset" + (f", overwrite_tol={tol:g}" if tol != 50.0 else "")
        assert said in result.output.replace("\n", "")
