"""Resampling a volume onto another grid (lesson 11): to isotropic spacing, or onto a reference volume's grid.

Both go through world coordinates: each target voxel centre is mapped by the target affine to millimetres and by
the inverse source affine back to a (fractional) source index, where scipy interpolates (order 0 nearest, 1 linear,
3 cubic). So a resampled volume keeps its place in the patient, whatever the orientation.
"""

import numpy as np

from ..base.errors import ConfigError
from .io import Volume

__all__ = ["resample_to", "resample", "isotropic"]


def resample_to(volume: Volume, affine, shape, order: int = 1) -> Volume:
    """Return `volume` sampled on the grid (`affine`, `shape`); voxels outside the source take the nearest edge."""
    from scipy.ndimage import affine_transform

    if order not in (0, 1, 3):
        raise ConfigError(f"order must be 0 (nearest), 1 (linear) or 3 (cubic); got {order}.")
    affine = np.asarray(affine, dtype=np.float64)
    to_source = np.linalg.inv(volume.affine) @ affine  # target index -> world -> source index
    array = affine_transform(volume.array, to_source[:3, :3], offset=to_source[:3, 3], output_shape=tuple(shape),
                             order=order, mode="nearest", prefilter=order > 1)
    return Volume(array, affine, source=volume.source)


def resample(volume: Volume, spacing, order: int = 1) -> Volume:
    """Return `volume` resampled to voxels of `spacing` mm (one number: isotropic), covering the same field of view."""
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    if not np.all(spacing > 0):
        raise ConfigError(f"Spacing must be positive mm; got {spacing.tolist()}.")
    ratio = spacing / np.array(volume.spacing)
    shape = np.maximum(1, np.round(np.array(volume.shape) / ratio)).astype(int)
    step = np.eye(4)
    step[:3, :3] = np.diag(ratio)
    step[:3, 3] = 0.5 * ratio - 0.5  # voxel centres stay centred in the same field of view
    return resample_to(volume, volume.affine @ step, shape, order)


def isotropic(volume: Volume, order: int = 1) -> Volume:
    """Return `volume` resampled to cubic voxels of its finest spacing."""
    return resample(volume, min(volume.spacing), order)
