"""Where does a map point? Scores against exact masks, the baselines they must beat, and a burned-in marker.

With lesions inserted at known pixels (`medkit.segmentation.insert_lesions`) a map's localisation can be
scored exactly: the pointing game (Zhang et al., 2018) asks whether the map's maximum falls on the lesion,
the energy share how much of the map lies inside it. Neither means anything alone: random maps of the
CAM's smoothness and a centre prior (lesions sit in the middle of the film) are the bars to clear.
A burned-in marker, like the hospital tokens of Zech et al. (2018), is the shortcut a model can learn instead.
"""

import numpy as np
from scipy.ndimage import distance_transform_edt

from ..base.errors import DataError

__all__ = ["pointing_game", "energy_inside", "centre_prior", "marker_box", "box_mask", "burn_marker"]


def _pair(maps, masks) -> tuple:
    """Return maps as float (N, H, W) and masks as bool of the same shape, or raise a DataError."""
    maps, masks = np.asarray(maps, dtype=np.float64), np.asarray(masks).astype(bool)
    if masks.ndim == 2:
        masks = np.broadcast_to(masks, maps.shape)
    if maps.ndim != 3 or maps.shape != masks.shape:
        raise DataError(f"Expected maps and masks shaped (N, H, W) alike, got {maps.shape} and {masks.shape}.")
    if not masks.reshape(len(masks), -1).any(1).all():
        raise DataError("A mask is empty: score only images that contain the target (e.g. masks.any((1, 2))).")
    return maps, masks


def pointing_game(maps, masks, tolerance: float = 0.0) -> np.ndarray:
    """Return per image whether the map's maximum lies inside the mask or within `tolerance` pixels of it."""
    maps, masks = _pair(maps, masks)
    flat = maps.reshape(len(maps), -1).argmax(1)
    rows, cols = np.unravel_index(flat, maps.shape[1:])
    distance = np.stack([distance_transform_edt(~m) for m in masks])  # 0 inside, pixels to the mask outside
    return distance[np.arange(len(maps)), rows, cols] <= tolerance


def energy_inside(maps, masks) -> np.ndarray:
    """Return per image the share of the map's total (clipped at 0) that falls inside the mask."""
    maps, masks = _pair(maps, masks)
    maps = np.clip(maps, 0, None)
    total = maps.reshape(len(maps), -1).sum(1)
    return (maps * masks).reshape(len(maps), -1).sum(1) / np.maximum(total, 1e-12)


def centre_prior(n: int, size: int, width: float = 0.25) -> np.ndarray:
    """Return `n` maps (N, size, size) of one Gaussian at the image centre, sd `width` x size: where lesions sit."""
    axis = (np.arange(size) + 0.5 - size / 2) / (width * size)
    bump = np.exp(-0.5 * (axis[:, None] ** 2 + axis[None, :] ** 2))
    return np.broadcast_to(bump / bump.max(), (int(n), size, size)).astype(np.float32)


def marker_box(size: int, fraction: float = 0.2) -> tuple:
    """Return (top, bottom, left, right) of the marker's square in the top-left corner, `fraction` of the side."""
    if not 0 < fraction <= 0.5:
        raise DataError(f"marker fraction={fraction}: expected a share of the image side in (0, 0.5].")
    side = max(int(round(fraction * size)), 5)  # below 5 pixels the "L" has no shape left
    margin = max(size // 32, 1)  # a real marker sits near, not on, the film's edge
    return margin, margin + side, margin, margin + side


def box_mask(size: int, box: tuple) -> np.ndarray:
    """Return a (size, size) bool mask of `box` = (top, bottom, left, right)."""
    mask = np.zeros((size, size), dtype=bool)
    mask[box[0]:box[1], box[2]:box[3]] = True
    return mask


def burn_marker(images, where, fraction: float = 0.2) -> np.ndarray:
    """Return a copy of grey uint8 images (N, H, W) with a white "L" on a black square burned in where `where` is true."""
    images = np.array(images, dtype=np.uint8, copy=True)
    where = np.asarray(where, dtype=bool)
    if images.ndim != 3 or images.shape[1] != images.shape[2] or len(where) != len(images):
        raise DataError(f"burn_marker: expected square grey images (N, H, W) and one flag per image, got {images.shape} "
                        f"and {where.shape}.")
    top, bottom, left, right = marker_box(images.shape[1], fraction)
    stroke = max((bottom - top) // 4, 1)
    patch = np.zeros((bottom - top, right - left), dtype=np.uint8)
    patch[stroke:-stroke, stroke:2 * stroke] = 255  # the L's upright
    patch[-2 * stroke:-stroke, stroke:-stroke] = 255  # and its foot
    images[where, top:bottom, left:right] = patch
    return images
