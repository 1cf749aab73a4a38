"""A documented, seeded acquisition shift that mimics another scanner or site, and simulated sites.

Real multi-site data is rarely open to a class. An X-ray from another hospital differs mostly in
its intensity curve (detector and post-processing), noise, sharpness and resolution; `Scanner`
applies exactly those four changes to uint8 images. The sites are simulated, and lessons say so.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .data.dataset import ImageDataset
from .errors import DataError

__all__ = ["Scanner", "SCANNERS", "make_sites"]


@dataclass(frozen=True)
class Scanner:
    """One simulated scanner: a contrast curve, noise, blur and a resolution change."""

    name: str = "reference"
    gamma: float = 1.0  # intensity curve x -> x**gamma (detector response, post-processing)
    contrast: float = 1.0  # scale around mid-grey
    brightness: float = 0.0  # offset, in [0, 1] intensity units
    noise: float = 0.0  # std of Gaussian noise, in [0, 1] intensity units (quantum noise)
    blur: float = 0.0  # Gaussian blur sigma in pixels (focal spot, scatter)
    downsample: float = 1.0  # factor < 1 loses resolution: down then back up

    def __call__(self, images: np.ndarray, seed: int = 0) -> np.ndarray:
        """Return uint8 images as this scanner would have acquired them (seeded noise)."""
        images = np.asarray(images)
        if images.dtype != np.uint8:
            raise DataError(f"Scanner expects uint8 images, got {images.dtype}.")
        x = images.astype(np.float32) / 255.0
        spatial = (0, 1, 1) if x.ndim == 3 else (0, 1, 1, 0)
        if self.downsample < 1.0:
            zoom = [1 if s == 0 else self.downsample for s in spatial]
            small = ndimage.zoom(x, zoom, order=1)
            x = ndimage.zoom(small, [a / b for a, b in zip(x.shape, small.shape)], order=1)
        if self.blur > 0:
            x = ndimage.gaussian_filter(x, sigma=[self.blur * s for s in spatial])
        x = np.clip(x, 0, 1) ** self.gamma
        x = (x - 0.5) * self.contrast + 0.5 + self.brightness
        if self.noise > 0:
            x = x + np.random.default_rng(seed).normal(0, self.noise, x.shape).astype(np.float32)
        return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


SCANNERS = {
    "reference": Scanner(),
    "high_contrast": Scanner("high_contrast", gamma=1.4, contrast=1.25, noise=0.02),
    "soft_low_dose": Scanner("soft_low_dose", gamma=0.8, contrast=0.8, brightness=0.05, noise=0.06, blur=0.6),
    "low_resolution": Scanner("low_resolution", gamma=1.1, downsample=0.5, blur=0.4, noise=0.03),
}


def make_sites(dataset: ImageDataset, scanners=("reference", "high_contrast", "soft_low_dose"), *,
               label_mix=None, seed: int = 0) -> ImageDataset:
    """Split `dataset` into simulated sites, each imaged by its own scanner; return it with `groups` = site name.

    `label_mix` optionally gives each site's share of positives (e.g. (0.5, 0.75, 0.9)) so the sites
    differ in case mix too; images are dealt out without replacement, so no image is in two sites.
    """
    names = [s if isinstance(s, str) else s.name for s in scanners]
    scanners = [SCANNERS[s] if isinstance(s, str) else s for s in scanners]
    if len(dataset) < 2 * len(scanners):
        raise DataError(f"{len(dataset)} images are too few for {len(scanners)} sites.")
    rng = np.random.default_rng(seed)
    n_per_site = len(dataset) // len(scanners)
    if label_mix is None:
        order = rng.permutation(len(dataset))
        parts = [order[i * n_per_site:(i + 1) * n_per_site] for i in range(len(scanners))]
    else:
        if len(label_mix) != len(scanners):
            raise DataError(f"label_mix has {len(label_mix)} entries for {len(scanners)} sites.")
        pos, neg = (list(rng.permutation(np.flatnonzero(dataset.labels == k))) for k in (1, 0))
        n_pos_total, n_neg_total = len(pos), len(neg)
        parts = []
        for share in label_mix:
            n_pos = min(int(round(n_per_site * share)), len(pos))
            n_neg = min(n_per_site - n_pos, len(neg))
            parts.append(np.array([pos.pop() for _ in range(n_pos)] + [neg.pop() for _ in range(n_neg)], dtype=int))
        if any(len(p) == 0 for p in parts):
            raise DataError(f"label_mix {label_mix} cannot be met with {n_pos_total} positives and {n_neg_total} negatives.")
    images, labels, groups = [], [], []
    for i, (name, scanner, part) in enumerate(zip(names, scanners, parts)):
        images.append(scanner(dataset.images[part], seed=seed + i))
        labels.append(dataset.labels[part])
        groups += [name] * len(part)
    return ImageDataset(np.concatenate(images), np.concatenate(labels), list(dataset.classes), np.array(groups),
                        name=f"{dataset.name}:sites", meta={**dataset.meta, "sites": names, "simulated": True})
