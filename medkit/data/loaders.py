"""Fast in-memory batches: images stay uint8 until a batch is drawn, then are preprocessed as a whole."""

import numpy as np
import torch

from .dataset import ImageDataset

__all__ = ["to_tensor", "BatchLoader"]


def to_tensor(dataset: ImageDataset) -> torch.Tensor:
    """Return the images as a uint8 tensor (N, C, H, W)."""
    images = torch.from_numpy(np.ascontiguousarray(dataset.images))
    return images.unsqueeze(1) if images.ndim == 3 else images.permute(0, 3, 1, 2).contiguous()


class BatchLoader:
    """Iterate over (x, y) batches of an ImageDataset, in memory, seeded.

    Slicing one tensor per batch is many times faster than a per-image DataLoader for the small
    images the lessons use. `augment` (float [0, 1] batch -> batch) runs before `preprocess`
    (the backbone's resize and normalisation).
    """

    def __init__(self, dataset: ImageDataset, batch_size: int = 64, *, shuffle: bool = False, seed: int = 0,
                 preprocess=None, augment=None, drop_last: bool = False):
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.images, self.labels = to_tensor(dataset), torch.from_numpy(dataset.labels)
        self.preprocess, self.augment = preprocess, augment
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.labels)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            idx = order[start:start + self.batch_size]
            x = self.images[idx]
            if self.augment is not None:
                x = self.augment(x.float() / 255.0)
            if self.preprocess is not None:
                x = self.preprocess(x)
            yield x, self.labels[idx]
