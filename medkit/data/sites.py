"""A documented, seeded acquisition shift that mimics another scanner or site, and simulated sites.

Real multi-site data is rarely open to a class. An X-ray from another hospital differs mostly in
its intensity curve (detector and post-processing), noise, sharpness and resolution; `Scanner`
applies exactly those four changes to uint8 images. The sites are simulated, and lessons say so.
"""

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..base.errors import DataError, UnknownNameError
from .augment import response_curve
from .dataset import ImageDataset

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
            # mode="nearest" and grid_mode: pixels are areas and edges are extended; the default
            # constant mode pads with zeros and draws dark bars along the bottom and right edges
            small = ndimage.zoom(x, zoom, order=1, mode="nearest", grid_mode=True)
            x = ndimage.zoom(small, [a / b for a, b in zip(x.shape, small.shape)], order=1, mode="nearest",
                             grid_mode=True)
        if self.blur > 0:
            x = ndimage.gaussian_filter(x, sigma=[self.blur * s for s in spatial])
        x = response_curve(x, self.gamma, self.contrast, self.brightness)
        if self.noise > 0:
            x = x + np.random.default_rng(seed).normal(0, self.noise, x.shape).astype(np.float32)
        return (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)


SCANNERS = {
    "reference": Scanner(),
    "high_contrast": Scanner("high_contrast", gamma=1.4, contrast=1.25, noise=0.02),
    "soft_low_dose": Scanner("soft_low_dose", gamma=0.8, contrast=0.8, brightness=0.05, noise=0.06, blur=0.6),
    "low_resolution": Scanner("low_resolution", gamma=1.1, downsample=0.5, blur=0.4, noise=0.03),
}


def _site_size(n_pos: int, n_neg: int, label_mix, n_max: int) -> int:
    """Return the largest per-site size whose positive/negative counts all fit in the pools."""
    for n in range(n_max, 0, -1):
        pos = [int(round(n * share)) for share in label_mix]
        if sum(pos) <= n_pos and sum(n - p for p in pos) <= n_neg:
            return n
    return 0


def _deal_images(dataset: ImageDataset, n_sites: int, label_mix, rng) -> list:
    """Return one index array per site, dealing single images (a dataset without patient keys)."""
    n_per_site = len(dataset) // n_sites
    if label_mix is None:
        order = rng.permutation(len(dataset))
        return [order[i * n_per_site:(i + 1) * n_per_site] for i in range(n_sites)]
    pos, neg = (rng.permutation(np.flatnonzero(dataset.labels == k)) for k in (1, 0))
    n_per_site = _site_size(len(pos), len(neg), label_mix, n_per_site)
    if n_per_site < 2:
        raise DataError(f"label_mix {label_mix} cannot be met with {len(pos)} positives and {len(neg)} negatives "
                        f"for {n_sites} sites; use shares closer to {len(pos) / len(dataset):.2f} "
                        "(the dataset's own) or more images.")
    parts, used_pos, used_neg = [], 0, 0
    for share in label_mix:
        n_pos = int(round(n_per_site * share))
        n_neg = n_per_site - n_pos
        parts.append(np.concatenate([pos[used_pos:used_pos + n_pos], neg[used_neg:used_neg + n_neg]]))
        used_pos, used_neg = used_pos + n_pos, used_neg + n_neg
    return parts


def _take(queue: list, members: dict, target: int) -> list:
    """Remove whole patients from `queue` while they fit in `target` images; return their image indices."""
    taken, count = [], 0
    for key in list(queue):
        if count + len(members[key]) <= target:
            queue.remove(key)
            taken.append(members[key])
            count += len(members[key])
        if count == target:
            break
    return taken


def _deal_patients(dataset: ImageDataset, n_sites: int, label_mix, rng) -> list:
    """Return one index array per site, dealing whole patients (`dataset.groups`) so none is at two sites."""
    keys, inverse = np.unique(dataset.groups, return_inverse=True)
    members = {k: np.flatnonzero(inverse == i) for i, k in enumerate(keys)}
    order = [keys[i] for i in rng.permutation(len(keys))]
    if label_mix is None:  # each patient to the site with the fewest images so far: sites within a patient's size
        parts = [[] for _ in range(n_sites)]
        sizes = np.zeros(n_sites, int)
        for key in order:
            site = int(np.argmin(sizes))
            parts[site].append(members[key])
            sizes[site] += len(members[key])
        return [np.concatenate(p) if p else np.array([], int) for p in parts]
    mixed = [k for k in keys if len(np.unique(dataset.labels[members[k]])) > 1]
    if mixed:
        raise DataError(f"label_mix needs one class per patient, but {len(mixed)} patient(s) have both (e.g. "
                        f"{str(mixed[0])!r}); deal them without a label_mix, or give each image its own group.")
    positive = [k for k in order if dataset.labels[members[k][0]] == 1]
    negative = [k for k in order if dataset.labels[members[k][0]] == 0]
    n_pos, n_neg = (sum(len(members[k]) for k in side) for side in (positive, negative))
    n_per_site = _site_size(n_pos, n_neg, label_mix, len(dataset) // n_sites)
    if n_per_site < 2:
        raise DataError(f"label_mix {label_mix} cannot be met with {n_pos} positive and {n_neg} negative images "
                        f"for {n_sites} sites; use shares closer to {n_pos / len(dataset):.2f} (the dataset's own) "
                        "or more patients.")
    parts = []
    for share in label_mix:
        want_pos = int(round(n_per_site * share))
        taken = _take(positive, members, want_pos) + _take(negative, members, n_per_site - want_pos)
        parts.append(np.concatenate(taken) if taken else np.array([], int))
    return parts


def make_sites(dataset: ImageDataset, scanners=("reference", "high_contrast", "soft_low_dose"), *,
               label_mix=None, seed: int = 0) -> ImageDataset:
    """Split `dataset` into simulated sites, each imaged by its own scanner; return it with `groups` = site name.

    When `dataset.groups` holds patient keys, whole **patients** are dealt out, so no patient is at two sites (a
    real hospital images its own patients), and their keys follow the images in `meta["patients"]`; sites then
    differ in size by at most one patient's images. Without groups, single images are dealt out.
    `label_mix` optionally gives each site's share of positives (e.g. (0.5, 0.75, 0.9)) so the sites
    differ in case mix too. Nothing is at two sites; with a `label_mix`, every site gets the same size, the
    largest for which every mix is met (exactly for images; as closely as whole patients allow, never above it,
    for patients, who must then each have one class), so some images may be left out, and a DataError says so
    when no size works.
    """
    names = [s if isinstance(s, str) else s.name for s in scanners]
    for s in scanners:
        if isinstance(s, str) and s not in SCANNERS:
            raise UnknownNameError(f"Unknown scanner {s!r}; known: {sorted(SCANNERS)} (or pass a Scanner).")
    scanners = [SCANNERS[s] if isinstance(s, str) else s for s in scanners]
    if len(set(names)) != len(names):
        raise DataError(f"Site names must be distinct; got {names}.")
    if len(dataset) < 2 * len(scanners):
        raise DataError(f"{len(dataset)} images are too few for {len(scanners)} sites.")
    by_patient = dataset.groups is not None
    if by_patient and len(np.unique(dataset.groups)) < len(scanners):
        raise DataError(f"{len(np.unique(dataset.groups))} patients are too few for {len(scanners)} sites.")
    if label_mix is not None:
        label_mix = [float(share) for share in label_mix]
        if len(label_mix) != len(scanners):
            raise DataError(f"label_mix has {len(label_mix)} entries for {len(scanners)} sites.")
        if any(not 0 <= share <= 1 for share in label_mix):
            raise DataError(f"label_mix {label_mix} must hold shares of positives in [0, 1].")
    rng = np.random.default_rng(seed)
    deal = _deal_patients if by_patient else _deal_images
    parts = deal(dataset, len(scanners), label_mix, rng)
    images, labels, groups, patients = [], [], [], []
    for i, (name, scanner, part) in enumerate(zip(names, scanners, parts)):
        part = np.sort(part)  # dataset order within a site: the result does not depend on dealing order
        images.append(scanner(dataset.images[part], seed=seed + i))
        labels.append(dataset.labels[part])
        groups += [name] * len(part)
        if by_patient:
            patients += dataset.groups[part].tolist()
    meta = {**dataset.meta, "sites": names, "simulated": True}
    if by_patient:
        meta["patients"] = patients
    return ImageDataset(np.concatenate(images), np.concatenate(labels), list(dataset.classes), np.array(groups),
                        name=f"{dataset.name}:sites", meta=meta)
