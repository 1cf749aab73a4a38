"""The one dataset type every source produces: images, labels, and optional groups (patient or site)."""

from dataclasses import dataclass, field

import numpy as np

from ..base.errors import DataError

__all__ = ["ImageDataset"]


def _integer_labels(labels: np.ndarray, name: str) -> np.ndarray:
    """Return labels as int64, refusing fractional, soft or NaN labels instead of truncating them."""
    if labels.dtype.kind == "f":
        bad = ~np.isfinite(labels) | (labels != np.round(labels))
        if bad.any():
            raise DataError(f"{name or 'dataset'}: {int(bad.sum())} label(s) are not whole numbers (e.g. "
                            f"{labels[bad][0]}). medkit trains on one class index per image; soft or fractional "
                            "labels are refused rather than truncated. Threshold them into classes first.")
    elif labels.dtype.kind not in "iub":
        raise DataError(f"{name or 'dataset'}: labels must be class indices (integers), got dtype {labels.dtype}.")
    return labels.astype(np.int64)


@dataclass
class ImageDataset:
    """In-memory images (N, H, W) grey or (N, H, W, C) colour, uint8, with integer labels.

    `groups` holds a patient or site id per image (for group-aware splits); `classes` names the labels.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list = field(default_factory=list)
    groups: np.ndarray | None = None
    name: str = ""
    meta: dict = field(default_factory=dict)  # provenance: source file, split, licence...

    def __post_init__(self):
        self.images = np.asarray(self.images)
        self.labels = np.asarray(self.labels).reshape(len(self.labels), -1)
        if self.labels.shape[1] != 1:
            raise DataError(f"{self.name or 'dataset'}: expected one label per image, got labels of shape {self.labels.shape}.")
        self.labels = _integer_labels(self.labels[:, 0], self.name)
        if self.images.ndim not in (3, 4):
            raise DataError(f"{self.name or 'dataset'}: images must be (N, H, W) or (N, H, W, C), got {self.images.shape}.")
        if len(self.images) != len(self.labels):
            raise DataError(f"{self.name or 'dataset'}: {len(self.images)} images but {len(self.labels)} labels; "
                            "they must match one to one.")
        if len(self.images) == 0:
            raise DataError(f"{self.name or 'dataset'}: no images.")
        if self.labels.min() < 0:
            raise DataError(f"{self.name or 'dataset'}: negative label {self.labels.min()}; labels must be 0..K-1.")
        if self.classes and self.labels.max() >= len(self.classes):
            raise DataError(f"{self.name or 'dataset'}: label {self.labels.max()} is out of range for "
                            f"{len(self.classes)} classes {self.classes}.")
        if not self.classes:
            self.classes = [str(i) for i in range(int(self.labels.max()) + 1)]
        if self.groups is not None:
            self.groups = np.asarray(self.groups)
            if len(self.groups) != len(self.labels):
                raise DataError(f"{self.name or 'dataset'}: {len(self.groups)} group ids for {len(self.labels)} images.")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return 1 if self.images.ndim == 3 else self.images.shape[-1]

    @property
    def image_size(self) -> tuple:
        return tuple(self.images.shape[1:3])

    def class_counts(self) -> dict:
        """Return {class name: count}."""
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return {name: int(c) for name, c in zip(self.classes, counts)}

    def subset(self, index, name: str | None = None) -> "ImageDataset":
        """Return the images at `index` (indices or a boolean mask) as a new dataset."""
        index = np.asarray(index)
        positions = np.flatnonzero(index) if index.dtype == bool else index
        # per-image lists in meta (paths, patient, site) follow the images; other entries are copied
        meta = {key: [value[i] for i in positions] if isinstance(value, list) and len(value) == len(self) else value
                for key, value in self.meta.items()}
        return ImageDataset(self.images[index], self.labels[index], list(self.classes),
                            None if self.groups is None else self.groups[index],
                            name if name is not None else self.name, meta)

    def __repr__(self) -> str:
        return (f"ImageDataset({self.name!r}, n={len(self)}, size={self.image_size}, channels={self.channels}, "
                f"classes={self.class_counts()})")
