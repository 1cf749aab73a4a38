"""Images with their masks: one checked container and a seeded in-memory batch loader."""

from dataclasses import dataclass, field

import numpy as np
import torch

from ..base.errors import DataError
from ..data.images import resize_image

__all__ = ["SegmentationDataset", "check_masks", "MaskLoader", "resize_images"]


def check_masks(masks, labels=(0, 1), what: str = "masks") -> np.ndarray:
    """Return `masks` as uint8 after checking that every value is one of `labels`."""
    masks = np.asarray(masks)
    if masks.dtype == bool:
        masks = masks.astype(np.uint8)
    if masks.size and not np.issubdtype(masks.dtype, np.integer):
        if not np.all(np.isfinite(masks)) or not np.array_equal(masks, np.round(masks)):
            raise DataError(f"{what}: masks must hold integer labels {list(labels)}, got non-integer {masks.dtype} values "
                            "(a probability map?). Threshold it first, e.g. (prob >= 0.5).")
    values = np.unique(masks)
    unexpected = sorted(set(values.tolist()) - set(labels))
    if unexpected:
        hint = " A 0/255 PNG mask reads as labels 0/1 with load_png_masks()." if 255 in unexpected else ""
        raise DataError(f"{what}: mask values {unexpected[:10]} are not among the expected labels {list(labels)}.{hint}")
    return masks.astype(np.uint8)


def resize_images(images, image_size: int) -> np.ndarray:
    """Return uint8 images (N, H, W) resized to `image_size` square (bilinear; antialiased when shrinking)."""
    images = np.asarray(images)
    if images.ndim != 3:
        raise DataError(f"Expected grey images (N, H, W), got shape {images.shape}.")
    if images.shape[1:] == (image_size, image_size):
        return images.astype(np.uint8)
    return np.stack([resize_image(image.astype(np.uint8), int(image_size)) for image in images])


@dataclass
class SegmentationDataset:
    """Grey images (N, H, W) uint8 with one label mask (N, H, W) per image; label 0 is background.

    `classes` names the labels (index = label value). Construction checks what a loader would
    otherwise trip over later: images and masks that do not align, labels outside `classes`, no images.
    """

    images: np.ndarray
    masks: np.ndarray
    classes: list = field(default_factory=lambda: ["background", "lesion"])
    name: str = ""
    meta: dict = field(default_factory=dict)  # provenance: source, seed, lesion settings...

    def __post_init__(self):
        label = self.name or "segmentation dataset"
        self.images, masks = np.asarray(self.images), np.asarray(self.masks)
        if len(self.images) == 0 or len(masks) == 0:
            raise DataError(f"{label}: no images or no masks ({len(self.images)} images, {len(masks)} masks); "
                            "a segmentation set needs at least one image with its mask.")
        if self.images.ndim != 3:
            raise DataError(f"{label}: images must be grey (N, H, W), got shape {self.images.shape}.")
        if masks.shape != self.images.shape:
            raise DataError(f"{label}: masks {masks.shape} do not align with images {self.images.shape}; each mask must "
                            "have the size of its image (resize with nearest-neighbour, never bilinear).")
        if self.images.dtype != np.uint8:
            raise DataError(f"{label}: images must be uint8 (0-255), got {self.images.dtype}.")
        self.masks = check_masks(masks, range(len(self.classes)), label)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> tuple:
        return tuple(self.images.shape[1:])

    def foreground_fraction(self) -> float:
        """Return the share of pixels that are not background (the class imbalance Dice loss fights)."""
        return float((self.masks > 0).mean())

    def subset(self, index, name: str | None = None) -> "SegmentationDataset":
        """Return the images at `index` (indices or a boolean mask) as a new dataset."""
        index = np.asarray(index)
        return SegmentationDataset(self.images[index], self.masks[index], list(self.classes),
                                   self.name if name is None else name, dict(self.meta))

    def resized(self, image_size: int) -> "SegmentationDataset":
        """Return the set at `image_size` square: images bilinear, masks nearest-neighbour (labels stay labels)."""
        masks = torch.from_numpy(self.masks).unsqueeze(1).float()
        masks = torch.nn.functional.interpolate(masks, size=(image_size, image_size), mode="nearest-exact")
        return SegmentationDataset(resize_images(self.images, image_size), masks[:, 0].to(torch.uint8).numpy(),
                                   list(self.classes), self.name, dict(self.meta))

    def split(self, n_test: int, seed: int = 0) -> tuple["SegmentationDataset", "SegmentationDataset"]:
        """Return (train, test) with `n_test` images drawn at random (seeded) for the test part."""
        if not 0 < n_test < len(self):
            raise DataError(f"Cannot hold out {n_test} of {len(self)} images; leave at least one on each side.")
        order = np.random.default_rng(seed).permutation(len(self))
        return self.subset(np.sort(order[n_test:]), f"{self.name}:train"), self.subset(np.sort(order[:n_test]),
                                                                                        f"{self.name}:test")

    def __repr__(self) -> str:
        empty = int((self.masks.reshape(len(self), -1).max(1) == 0).sum())
        return (f"SegmentationDataset({self.name!r}, n={len(self)}, size={self.image_size}, classes={self.classes}, "
                f"foreground={self.foreground_fraction():.2%}, empty masks={empty})")


class MaskLoader:
    """Iterate over (x, y) batches: x float (B, 1, H, W) in [0, 1], y float (B, 1, H, W) binary masks.

    `steps` fixes the number of batches per pass (cycling through reshuffled data), so runs with 8
    or 800 training masks get the same number of optimiser steps. `flip` mirrors image and mask
    together, left-right, at random: the one augmentation that keeps a mask exact.
    """

    def __init__(self, dataset: SegmentationDataset, batch_size: int = 16, *, steps: int | None = None,
                 shuffle: bool = True, flip: bool = False, seed: int = 0):
        self.images = torch.from_numpy(dataset.images).unsqueeze(1)
        self.masks = torch.from_numpy(dataset.masks > 0).unsqueeze(1)
        self.batch_size, self.steps, self.shuffle, self.flip = int(batch_size), steps, shuffle, flip
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return self.steps if self.steps is not None else -(-len(self.images) // self.batch_size)

    def _order(self):
        n = len(self.images)
        while True:  # endless stream of (re)shuffled indices; __iter__ takes what it needs
            yield from (torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)).tolist()

    def __iter__(self):
        order, n = self._order(), len(self.images)
        for step in range(len(self)):
            size = self.batch_size if self.steps is not None else min(self.batch_size, n - step * self.batch_size)
            idx = torch.tensor([next(order) for _ in range(size)])
            x, y = self.images[idx].float() / 255.0, self.masks[idx].float()
            if self.flip:
                mirror = torch.rand(len(idx), generator=self.generator) < 0.5
                x[mirror], y[mirror] = x[mirror].flip(-1), y[mirror].flip(-1)
            yield x, y
