from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kapao_edge.errors import InputError
from kapao_edge.postprocess import Poses, PostprocessConfig


def test_defaults_are_the_official_val_values():
    config = PostprocessConfig()
    assert config == PostprocessConfig.official_val()
    assert config.as_dict() == dict(
        conf_thres=0.001, iou_thres=0.65, conf_thres_kp=0.2, iou_thres_kp=0.25, conf_thres_kp_person=0.3,
        overwrite_tol=50.0, max_det=300, max_nms=30000, use_kp_dets=True, compat="default",
    )
    assert not config.combined_nms


def test_official_demo_values_and_overrides():
    demo = PostprocessConfig.official_demo()
    assert (demo.conf_thres, demo.iou_thres, demo.conf_thres_kp, demo.iou_thres_kp) == (0.7, 0.45, 0.5, 0.45)
    assert (demo.conf_thres_kp_person, demo.overwrite_tol) == (0.2, 25.0)
    assert not demo.combined_nms  # equal IoU thresholds, but the keypoint threshold is the looser one
    assert demo.replace(conf_thres_kp=0.7).combined_nms
    assert PostprocessConfig.official_demo(compat="official").compat == "official"


def test_named_applies_preset_then_model_recommendation_then_user():
    recommended = {"overwrite_tol": 12.0, "conf_thres_kp_person": 0.1}
    val = PostprocessConfig.named("val", recommended)
    assert val == PostprocessConfig.official_val(overwrite_tol=12.0, conf_thres_kp_person=0.1)
    demo = PostprocessConfig.named("demo", recommended, overwrite_tol=30, conf_thres=None)
    assert (demo.overwrite_tol, demo.conf_thres_kp_person, demo.conf_thres) == (30.0, 0.1, 0.7)
    assert PostprocessConfig.named("val") == PostprocessConfig.official_val()
    with pytest.raises(InputError, match="thresholds must be one of val, demo"):
        PostprocessConfig.named("fast")


@pytest.mark.parametrize("values, message", [
    ([12.0], "must be a mapping"),
    ({"tolerance": 12.0}, "unknown post-processing option"),
    ({"overwrite_tol": -1.0}, "overwrite_tol must be >= 0"),
    ({"conf_thres": "high"}, "conf_thres must be a number"),
])
def test_recommended_values_are_checked_and_name_their_source(values, message):
    from kapao_edge.postprocess.config import check_recommended

    with pytest.raises(InputError, match=message) as caught:
        check_recommended(values, source="model.onnx")
    assert str(caught.value).startswith("model.onnx: ")
    assert check_recommended({"overwrite_tol": 12}, source="x") == {"overwrite_tol": 12.0}
    assert check_recommended(None, source="x") == {}


def test_replace_validates_and_round_trips():
    config = PostprocessConfig(overwrite_tol=50)
    assert isinstance(config.overwrite_tol, float)
    changed = config.replace(conf_thres=0.25, max_det=10)
    assert (changed.conf_thres, changed.max_det, config.conf_thres) == (0.25, 10, 0.001)
    assert PostprocessConfig(**changed.as_dict()) == changed
    with pytest.raises(InputError, match="conf_thres must be in"):
        config.replace(conf_thres=2.0)
    with pytest.raises(InputError, match="unknown post-processing option"):
        config.replace(iou=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.conf_thres = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(conf_thres=-0.1), "conf_thres must be in"),
        (dict(iou_thres=1.5), "iou_thres must be in"),
        (dict(conf_thres_kp_person=float("nan")), "finite"),
        (dict(iou_thres_kp="0.3"), "must be a number"),
        (dict(conf_thres_kp=True), "must be a number"),
        (dict(overwrite_tol=-1), "overwrite_tol"),
        (dict(max_det=0), "max_det must be a positive int"),
        (dict(max_nms=2.5), "max_nms must be a positive int"),
        (dict(use_kp_dets="yes"), "use_kp_dets"),
        (dict(compat="torch"), "compat must be one of"),
    ],
)
def test_invalid_values_raise_input_error(changes, message):
    with pytest.raises(InputError, match=message):
        PostprocessConfig(**changes)


def test_poses_shapes_and_len():
    empty = Poses.empty(17)
    assert len(empty) == 0 and empty.num_keypoints == 17 and empty.keypoints.shape == (0, 17, 3)
    poses = Poses(np.zeros((2, 14, 3), np.float32), np.zeros((2, 4), np.float32), np.zeros(2, np.float32))
    assert len(poses) == 2 and poses.num_keypoints == 14
    with pytest.raises(InputError, match="inconsistent"):
        Poses(np.zeros((2, 14, 3), np.float32), np.zeros((3, 4), np.float32), np.zeros(2, np.float32))
