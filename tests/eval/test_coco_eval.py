"""COCO keypoint evaluation, PCK and result conversion, on synthetic sets and the real COCO sample."""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from kapao_edge.data.coco import load_keypoint_dataset
from kapao_edge.data.synth import generate_dataset
from kapao_edge.errors import InputError
from kapao_edge.eval import COCO_KEYPOINT_METRICS, evaluate_keypoints, pck, results_to_coco


@pytest.fixture(scope="module")
def synth_json(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_dataset(tmp_path_factory.mktemp("synth"), 24, seed=4, workers=0)


def _perfect(json_path: Path) -> list[dict]:
    """Predictions copied from the ground truth (labelled persons only), each with score 1."""
    ds = load_keypoint_dataset(json_path)
    poses = []
    for record in ds.images:
        keep = (~record.persons.iscrowd) & (record.persons.num_keypoints > 0)
        poses.append((record.persons.keypoints[keep], np.ones(int(keep.sum()))))
    return results_to_coco(poses, [r.id for r in ds.images])


def _shift(results: list[dict], pixels: float) -> list[dict]:
    moved = copy.deepcopy(results)
    for res in moved:
        res["keypoints"] = [v + pixels if i % 3 != 2 else v for i, v in enumerate(res["keypoints"])]
    return moved


def test_ground_truth_against_itself_scores_100(synth_json: Path) -> None:
    metrics = evaluate_keypoints(synth_json, _perfect(synth_json))
    assert set(metrics) == set(COCO_KEYPOINT_METRICS)
    assert metrics["AP"] == pytest.approx(100.0) and metrics["AR"] == pytest.approx(100.0)


def test_shifted_keypoints_lower_ap_monotonically(synth_json: Path) -> None:
    perfect = _perfect(synth_json)
    ap = [evaluate_keypoints(synth_json, _shift(perfect, s))["AP"] for s in (1.0, 3.0, 8.0)]
    assert 100.0 > ap[0] > ap[1] > ap[2] >= 0.0


def test_empty_results_score_zero_without_crashing(synth_json: Path, tmp_path: Path) -> None:
    assert evaluate_keypoints(synth_json, [])["AP"] == 0.0
    (tmp_path / "empty.json").write_text("[]")
    assert evaluate_keypoints(synth_json, tmp_path / "empty.json")["AR"] == 0.0


def test_results_from_a_file_and_quiet_output(synth_json: Path, tmp_path: Path, capsys) -> None:
    path = tmp_path / "results.json"
    path.write_text(json.dumps(_perfect(synth_json)))
    capsys.readouterr()
    assert evaluate_keypoints(synth_json, path)["AP50"] == pytest.approx(100.0)
    assert capsys.readouterr().out == ""  # pycocotools' tables are swallowed


def test_coco_sample_with_unlabelled_persons_and_a_crowd_region(coco_sample_dir: Path, tmp_path: Path) -> None:
    data = json.loads((coco_sample_dir / "person_keypoints_sample.json").read_text())
    first = data["images"][0]
    data["annotations"].append({
        "id": 999, "image_id": first["id"], "category_id": 1, "iscrowd": 1, "num_keypoints": 0,
        "keypoints": [0] * 51, "bbox": [0, 0, 60, 60], "area": 3600.0,
        "segmentation": {"counts": [0, 3600], "size": [first["height"], first["width"]]},
    })
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(data))
    perfect = _perfect(coco_sample_dir / "person_keypoints_sample.json")
    assert len(perfect) == 12  # 14 persons, 2 with no keypoints
    assert evaluate_keypoints(gt_path, perfect)["AP"] == pytest.approx(100.0)
    # A stray prediction inside the crowd region is ignored rather than counted as a false positive.
    stray = {"image_id": first["id"], "category_id": 1, "keypoints": [30.0, 30.0, 1.0] * 17, "score": 0.99}
    assert evaluate_keypoints(gt_path, perfect + [stray])["AP"] == pytest.approx(100.0)
    assert evaluate_keypoints(gt_path, _shift(perfect, 6.0))["AP"] < 100.0


def test_crowdpose_needs_crowdposetools(crowdpose_sample_dir: Path) -> None:
    if importlib.util.find_spec("crowdposetools") is not None:
        pytest.skip("crowdposetools is installed here")
    with pytest.raises(InputError, match="crowdposetools"):
        evaluate_keypoints(crowdpose_sample_dir / "crowdpose_sample.json", [], preset="crowdpose")


def test_synthetic_crowdpose_set_with_the_coco_protocol(tmp_path: Path) -> None:
    json_path = generate_dataset(tmp_path, 4, seed=1, preset="crowdpose", workers=0)
    with pytest.raises(InputError, match="crowdposetools"):
        evaluate_keypoints(json_path, [], preset="crowdpose")
    metrics = evaluate_keypoints(json_path, _perfect(json_path), preset="crowdpose", protocol="coco")
    assert metrics["AP"] == pytest.approx(100.0)


def test_malformed_results_are_rejected(synth_json: Path) -> None:
    with pytest.raises(InputError, match="keypoints"):
        evaluate_keypoints(synth_json, [{"image_id": 1, "category_id": 1, "keypoints": [1, 2, 1], "score": 1}])
    with pytest.raises(InputError, match="image_id 12345"):
        evaluate_keypoints(synth_json, [{"image_id": 12345, "keypoints": [0.0] * 51, "score": 1.0}])
    with pytest.raises(InputError, match="expects 14"):
        evaluate_keypoints(synth_json, [], preset="crowdpose")


def test_results_to_coco_layout() -> None:
    keypoints = np.arange(2 * 17 * 3, dtype=np.float64).reshape(2, 17, 3) + 0.12345
    results = results_to_coco([{"keypoints": keypoints, "scores": [0.9, 0.4]}, (np.zeros((0, 17, 3)), [])], [7, 8])
    assert len(results) == 2
    assert results[0]["image_id"] == 7 and results[0]["category_id"] == 1 and results[0]["score"] == 0.9
    assert results[1]["keypoints"][:3] == [51.123, 52.123, 53.123]
    with pytest.raises(InputError, match="2 images but 1"):
        results_to_coco([(keypoints, [1, 1]), (keypoints, [1, 1])], [1])


def test_pck_counts_hits_within_the_box_diagonal(synth_json: Path) -> None:
    perfect = _perfect(synth_json)
    assert pck(synth_json, perfect)["PCK"] == pytest.approx(100.0)
    far = pck(synth_json, _shift(perfect, 400.0))
    assert far["PCK"] == pytest.approx(0.0)
    half = pck(synth_json, perfect[::2])  # every other person missing
    assert 0.0 < half["PCK"] < 100.0
    assert half["matched_persons"] == len(perfect[::2]) and half["gt_persons"] == len(perfect)
