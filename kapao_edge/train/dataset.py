"""Training samples: COCO person-keypoint images turned into letterboxed, augmented KAPAO targets.

Each sample's randomness comes from a generator seeded with (seed, epoch, index), so a run is
reproducible whatever the number of loader workers and whichever worker serves the sample.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from kapao_edge.data.coco import find_annotations
from kapao_edge.data.letterbox import letterbox
from kapao_edge.errors import InputError
from kapao_edge.presets import preset_for_keypoints
from kapao_edge.train.augment import Sample, augment_hsv, mosaic4, random_affine, resize_long_side
from kapao_edge.train.hyp import Hyp
from kapao_edge.train.labels import (
    ImageAnnotations,
    clip_boxes,
    flip_labels_lr,
    keypoint_labels,
    labels_to_targets,
    pose_labels,
    read_coco_keypoints,
)


class KapaoDataset(Dataset):
    """Returns ``(image (3, S, S) uint8 RGB, targets (n, 5 + 3K) float32, index)`` per item.

    Target rows are ``[cls, cx, cy, w, h, k0x, k0y, k0v, ...]`` normalised by the image size.
    """

    def __init__(
        self,
        records: Sequence[ImageAnnotations],
        num_keypoints: int,
        imgsz: int,
        *,
        hyp: Hyp | None = None,
        augment: bool = True,
        kp_flip: Sequence[int] | None = None,
        seed: int = 0,
        cache_images: bool = False,
    ) -> None:
        if not records:
            raise InputError("the training set has no images")
        self.records = list(records)
        self.num_keypoints = num_keypoints
        self.imgsz = int(imgsz)
        self.hyp = hyp or Hyp()
        self.augment = augment
        self.kp_flip = tuple(kp_flip) if kp_flip is not None else preset_for_keypoints(num_keypoints).kp_flip
        if sorted(self.kp_flip) != list(range(num_keypoints)):
            raise InputError(f"kp_flip must be a permutation of 0..{num_keypoints - 1}, got {list(self.kp_flip)}")
        self.seed = seed
        self.epoch = 0
        self._cache: dict[int, Sample] | None = {} if cache_images else None

    @classmethod
    def from_coco(cls, annotation_file: str | Path, images_dir: str | Path, imgsz: int, **kwargs) -> "KapaoDataset":
        records, num_keypoints = read_coco_keypoints(annotation_file, images_dir)
        return cls(records, num_keypoints, imgsz, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """New random draws every epoch; call before iterating (workers copy the dataset then)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, labels = self.labelled_sample(index, rng)
        targets = labels_to_targets(labels, image.shape[1], image.shape[0])  # (n, 5 + 3K)
        rgb_chw = np.ascontiguousarray(image[:, :, ::-1].transpose(2, 0, 1))  # (3, S, S)
        return torch.from_numpy(rgb_chw), torch.from_numpy(targets), index

    def labelled_sample(self, index: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The final BGR image and its pixel-coordinate label rows (see ``kapao_edge.train.labels``)."""
        hyp = self.hyp
        size = self.imgsz
        if self.augment and rng.random() < hyp.mosaic:
            others = rng.integers(0, len(self), size=3)
            canvas = mosaic4([self.load(i) for i in (index, *others)], size, rng)
            sample, keep = random_affine(canvas, rng, out_size=(size, size), degrees=hyp.degrees,
                                         translate=hyp.translate, scale=hyp.scale)
        else:
            sample = self.letterboxed(index)
            keep = np.ones(len(sample.boxes), dtype=bool)
            if self.augment:
                sample, keep = random_affine(sample, rng, out_size=(size, size), degrees=hyp.degrees,
                                             translate=hyp.translate, scale=hyp.scale)

        height, width = sample.image.shape[:2]
        kp_box_side = hyp.kp_bbox * max(height, width)
        # Keypoint objects come from every visible keypoint, even of a person whose box was dropped.
        labels = np.concatenate([
            pose_labels(sample.boxes[keep], sample.keypoints[keep]),
            keypoint_labels(sample.keypoints, kp_box_side),
        ])  # (n, 5 + 3K)
        clip_boxes(labels, width, height)

        image = sample.image
        if self.augment:
            augment_hsv(image, rng, hyp.hsv_h, hyp.hsv_s, hyp.hsv_v)
            if rng.random() < hyp.fliplr:
                image = np.ascontiguousarray(image[:, ::-1])
                labels = flip_labels_lr(labels, width, self.kp_flip)
        return image, labels

    def load(self, index: int) -> Sample:
        """The image resized so its long side is ``imgsz``, with its persons scaled alike."""
        if self._cache is not None and index in self._cache:
            cached = self._cache[index]
            return Sample(cached.image.copy(), cached.boxes, cached.keypoints)
        record = self.records[index]
        image = cv2.imread(str(record.path), cv2.IMREAD_COLOR)
        if image is None:
            raise InputError(f"cannot read image {record.path}")
        if record.height and record.width and image.shape[:2] != (record.height, record.width):
            raise InputError(
                f"{record.path} is {image.shape[1]}x{image.shape[0]} but the annotations say "
                f"{record.width}x{record.height}"
            )
        image, factor = resize_long_side(image, self.imgsz, self.augment)
        boxes, keypoints = Sample(image, record.boxes, record.keypoints).scaled(factor)
        sample = Sample(image, boxes, keypoints)
        if self._cache is not None:
            self._cache[index] = sample
            return Sample(image.copy(), boxes, keypoints)
        return sample

    def letterboxed(self, index: int) -> Sample:
        sample = self.load(index)
        image, ratio, pad = letterbox(sample.image, self.imgsz, auto=False, scaleup=self.augment)
        boxes, keypoints = sample.scaled(ratio, pad)
        return Sample(image, boxes, keypoints)


def collate(batch: list[tuple[torch.Tensor, torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
    """Stack images; prepend each target row with its image's position in the batch."""
    images, targets, indices = zip(*batch)
    rows = [torch.cat([torch.full((len(t), 1), float(i)), t], dim=1) for i, t in enumerate(targets)]
    return torch.stack(images), torch.cat(rows), list(indices)  # (B, 3, S, S), (M, 6 + 3K)


def make_loader(dataset: KapaoDataset, batch_size: int, *, shuffle: bool = True, workers: int = 0,
                seed: int = 0) -> DataLoader:
    """A loader whose order is fixed by ``seed`` and the dataset's epoch (re-create it every epoch)."""
    generator = torch.Generator().manual_seed(seed * 100_003 + dataset.epoch)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, num_workers=workers, collate_fn=collate,
                      generator=generator, drop_last=False, persistent_workers=False)


def resolve_split(data: str | Path, images: str | Path | None = None) -> tuple[Path, Path]:
    """(annotation JSON, images folder) from a dataset folder or from a JSON file plus ``images``.

    A folder holds ``images/`` and exactly one ``*.json`` (at its top level or in ``annotations/``).
    """
    data = Path(data)
    if data.is_file():
        images_dir = Path(images) if images is not None else data.parent / "images"
        annotation = data
    elif data.is_dir():
        annotation = find_annotations(data)
        images_dir = Path(images) if images is not None else data / "images"
    else:
        raise InputError(f"dataset not found: {data}")
    if not images_dir.is_dir():
        raise InputError(f"images folder not found: {images_dir}")
    return annotation, images_dir
