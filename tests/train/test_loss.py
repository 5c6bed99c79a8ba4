"""Target assignment and the KAPAO loss on hand-made scenes with hand-derived expectations."""

from __future__ import annotations

import pytest
import torch

from kapao_edge.model import build_model
from kapao_edge.train.hyp import Hyp, LossGains
from kapao_edge.train.loss import KapaoLoss, bbox_ciou, build_targets

SIZE = 256  # a 256 x 256 input: grids 32, 16, 8 and 4 cells
GRIDS = [(32, 32), (16, 16), (8, 8), (4, 4)]
K = 17


@pytest.fixture(scope="module")
def anchors() -> torch.Tensor:
    return build_model("kapao_tiny").detect.anchors.clone()  # (4, 3, 2) grid units


def target_row(image: int, cls: int, cx: float, cy: float, w: float, h: float,
               keypoints: dict[int, tuple[float, float]] | None = None, size: int = SIZE) -> torch.Tensor:
    """One normalised target row from pixel values on a ``size`` x ``size`` image."""
    row = torch.zeros(6 + 3 * K)
    row[:6] = torch.tensor([image, cls, cx / size, cy / size, w / size, h / size])
    for k, (x, y) in (keypoints or {}).items():
        row[6 + 3 * k: 9 + 3 * k] = torch.tensor([x / size, y / size, 2.0])
    return row


def assignments(level_targets) -> set[tuple[int, int, int, int]]:
    """(class, anchor, cell x, cell y) of every positive on one level."""
    return set(zip(level_targets.cls.tolist(), level_targets.anchor.tolist(),
                   level_targets.grid_x.tolist(), level_targets.grid_y.tolist()))


def test_anchors_are_the_p6_pixel_anchors_in_grid_units(anchors):
    torch.testing.assert_close(anchors[0], torch.tensor([[19, 27], [44, 40], [38, 94]]) / 8.0)
    assert anchors[3, 2].tolist() == pytest.approx([925 / 64, 792 / 64])


def test_pose_object_goes_to_its_cell_and_nearer_neighbours_on_matching_anchors(anchors):
    # Person centre (98, 70) px, size 40 x 90 px.
    levels = build_targets(torch.stack([target_row(0, 0, 98, 70, 40, 90, {0: (100, 40)})]), GRIDS, anchors, 4.0)
    # Stride 8: centre (12.25, 8.75) -> own cell (12, 8), left neighbour (x frac 0.25 < 0.5) and lower
    # neighbour (y frac 0.75 > 0.5); box 5 x 11.25 cells is within 4x of all three anchors.
    assert assignments(levels[0]) == {(0, a, x, y) for a in (0, 1, 2) for x, y in [(12, 8), (11, 8), (12, 9)]}
    # Stride 16: centre (6.125, 4.375) -> left and upper neighbours; anchor 2 (11.25 cells wide) is
    # 4.5x the 2.5-cell box width, over anchor_t, so only anchors 0 and 1.
    assert assignments(levels[1]) == {(0, a, x, y) for a in (0, 1) for x, y in [(6, 4), (5, 4), (6, 3)]}
    # Stride 32: box 1.25 x 2.81 cells; only anchor 0 (4.375 x 9.41, ratios 3.5 and 3.3) is within 4x.
    assert assignments(levels[2]) == {(0, 0, x, y) for x, y in [(3, 2), (2, 2), (3, 1)]}
    # Stride 64: the smallest anchor is 6.8 cells wide for a 0.625-cell box: no match at all.
    assert len(levels[3].image) == 0


def test_box_and_keypoint_targets_are_relative_to_the_assigned_cell(anchors):
    levels = build_targets(torch.stack([target_row(0, 0, 98, 70, 40, 90, {0: (100, 40)})]), GRIDS, anchors, 4.0)
    level = levels[0]
    for i in range(len(level.image)):
        cell = (level.grid_x[i].item(), level.grid_y[i].item())
        assert level.box[i].tolist() == pytest.approx([12.25 - cell[0], 8.75 - cell[1], 5.0, 11.25])
        # nose at (100, 40) px = (12.5, 5.0) cells; unlabelled keypoints stay zero with v = 0
        assert level.keypoints[i, 0].tolist() == pytest.approx([12.5 - cell[0], 5.0 - cell[1], 2.0])
        assert level.keypoints[i, 1:].abs().sum().item() == 0
        assert level.anchor_wh[i].tolist() == pytest.approx(anchors[0, level.anchor[i]].tolist())


def test_keypoint_objects_and_the_border_rule(anchors):
    side = 0.05 * SIZE  # 12.8 px keypoint-object box
    rows = torch.stack([
        target_row(1, 1, 30, 203, side, side),  # cells (3.75, 25.375) at stride 8
        target_row(1, 1, 3.2, 203, side, side),  # cells (0.4, 25.375): no left neighbour off the border
    ])
    levels = build_targets(rows, GRIDS, anchors, 4.0)
    # 1.6-cell box: anchors 0 and 1 at stride 8 (anchor 2 is 11.75 / 1.6 = 7.3x too tall); nothing coarser.
    expected = {(1, a, x, y) for a in (0, 1) for x, y in [(3, 25), (4, 25), (3, 24), (0, 25), (0, 24)]}
    assert assignments(levels[0]) == expected
    assert all(len(level.image) == 0 for level in levels[1:])
    assert set(levels[0].image.tolist()) == {1}


def test_anchor_t_changes_the_matches(anchors):
    row = torch.stack([target_row(0, 0, 98, 70, 40, 90)])
    strict = build_targets(row, GRIDS, anchors, anchor_t=2.0)
    # With anchor_t 2 the 5 x 11.25-cell box at stride 8 is too wide for anchor 0 (5 / 2.375 = 2.1) and
    # too tall for anchor 1 (11.25 / 5 = 2.25); only anchor 2 (4.75 x 11.75) stays.
    assert {a for _, a, _, _ in assignments(strict[0])} == {2}


def test_ciou_is_one_for_identical_boxes_and_penalises_offsets():
    box = torch.tensor([[5.0, 5.0, 2.0, 4.0]])
    assert bbox_ciou(box, box).item() == pytest.approx(1.0, abs=1e-5)
    shifted = torch.tensor([[6.0, 5.0, 2.0, 4.0]])
    iou = (1 * 4) / (8 + 8 - 4)
    assert bbox_ciou(shifted, box).item() < iou  # the centre-distance penalty comes on top of IoU


def test_gains_follow_the_official_scaling():
    gains = LossGains.scaled(Hyp(), num_levels=4, num_classes=18, imgsz=1280)
    assert gains.box == pytest.approx(0.05 * 3 / 4)
    assert gains.obj == pytest.approx(0.7 * 4 * 3 / 4)
    assert gains.cls == pytest.approx(0.3 * 18 / 80 * 3 / 4)
    assert gains.kp == pytest.approx(0.025 * 3 / 4)


def test_loss_components_and_empty_targets():
    torch.manual_seed(0)
    model = build_model("kapao_tiny").train()
    detect = model.detect
    loss_fn = KapaoLoss(detect.anchors, detect.nc, K, LossGains.scaled(Hyp(), 4, detect.nc, 128))
    outputs = model(torch.rand(2, 3, 128, 128))
    total, parts = loss_fn(outputs, torch.zeros(0, 6 + 3 * K))
    assert parts[[0, 2, 3]].tolist() == [0.0, 0.0, 0.0]  # no positives: only objectness
    assert parts[1] > 0 and total.item() == pytest.approx(2 * parts.sum().item(), rel=1e-6)

    targets = torch.stack([target_row(0, 0, 40, 60, 30, 60, {0: (40, 35), 5: (30, 50)}, size=128),
                           target_row(1, 6, 30, 50, 6.4, 6.4, size=128)])
    total, parts = loss_fn(outputs, targets)
    assert torch.all(parts > 0) and torch.isfinite(total)
    total.backward()
    assert detect.m[0].weight.grad is not None and detect.m[0].weight.grad.abs().sum() > 0


def test_a_few_steps_on_one_batch_lower_the_loss(stick_dataset):
    from kapao_edge.train.dataset import KapaoDataset, collate

    torch.manual_seed(0)
    dataset = KapaoDataset.from_coco(stick_dataset / "person_keypoints.json", stick_dataset / "images", 128,
                                     hyp=Hyp().without_augmentation(), augment=True)
    images, targets, _ = collate([dataset[i] for i in range(4)])
    model = build_model("kapao_tiny").train()
    detect = model.detect
    loss_fn = KapaoLoss(detect.anchors, detect.nc, K, LossGains.scaled(Hyp(), 4, detect.nc, 128))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    inputs = images.float() / 255
    losses = []
    for _ in range(8):
        loss, _ = loss_fn(model(inputs), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert losses[-1] < min(losses[:3])
