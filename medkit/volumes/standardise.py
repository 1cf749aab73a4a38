"""MRI intensity standardisation for volumes (lesson 11): z-score, percentile scaling and Nyúl histogram matching.

The z-score and percentile scaling are lesson 01's (`medkit.data.intensity`), which work on arrays of any
dimension. Nyúl and Udupa (1999; Nyúl, Udupa and Zhang, IEEE TMI 2000) learn a *standard scale* from training
volumes: each volume's intensity landmarks (percentiles inside the foreground) are mapped linearly onto a common
range and averaged; a new volume is then mapped piecewise-linearly from its own landmarks to the standard ones.
"""

from itertools import combinations

import numpy as np

from ..base.errors import DataError
from ..data.intensity import percentile_clip, zscore

__all__ = ["zscore", "percentile_clip", "NyulStandardiser", "quantiles", "distribution_gap"]

LANDMARKS = (1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 99)  # Nyúl's deciles plus the 1st and 99th percentiles


def _foreground(array, mask) -> np.ndarray:
    array = np.asarray(array, dtype=np.float32)
    mask = array > array.min() if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != array.shape:
        raise DataError(f"Mask shape {mask.shape} does not match volume shape {array.shape}.")
    values = array[mask]
    if values.size < 2 or values.max() == values.min():
        raise DataError(f"The foreground holds {values.size} voxel(s) of one value; standardisation needs contrast.")
    return values


class NyulStandardiser:
    """Nyúl histogram standardisation: `fit` on training volumes, then `transform` any volume onto the learnt scale.

    Masks default to voxels above each volume's minimum (the background of a skull-stripped MRI is its minimum).
    """

    def __init__(self, landmarks=LANDMARKS, scale=(0.0, 100.0)):
        self.landmarks = np.asarray(landmarks, dtype=np.float64)
        if self.landmarks.ndim != 1 or len(self.landmarks) < 3 or np.any(np.diff(self.landmarks) <= 0):
            raise DataError(f"landmarks must be at least 3 increasing percentiles; got {landmarks}.")
        self.scale = tuple(map(float, scale))
        self.standard = None  # the learnt standard landmarks, set by fit()

    def _own(self, array, mask) -> np.ndarray:
        own = np.percentile(_foreground(array, mask), self.landmarks)
        if np.any(np.diff(own) <= 0):  # ties (e.g. 8-bit data): nudge so the mapping stays a function
            own = own + np.arange(len(own)) * 1e-6 * max(1.0, float(np.abs(own).max()))
        return own

    def fit(self, volumes, masks=None) -> "NyulStandardiser":
        """Learn the standard landmarks from `volumes` (arrays), with optional foreground `masks`."""
        volumes = list(volumes)
        if not volumes:
            raise DataError("NyulStandardiser.fit needs at least one training volume.")
        masks = list(masks) if masks is not None else [None] * len(volumes)
        low, high = self.scale
        mapped = []
        for array, mask in zip(volumes, masks):
            own = self._own(array, mask)
            mapped.append(low + (own - own[0]) / (own[-1] - own[0]) * (high - low))
        self.standard = np.mean(mapped, axis=0)
        return self

    def transform(self, array, mask=None) -> np.ndarray:
        """Map `array` piecewise-linearly from its landmarks to the standard ones (linear beyond the ends); float32."""
        if self.standard is None:
            raise DataError("Call NyulStandardiser.fit(training_volumes) before transform().")
        array = np.asarray(array, dtype=np.float32)
        own = self._own(array, mask)
        out = np.interp(array, own, self.standard)
        below, above = array < own[0], array > own[-1]  # extend the end segments instead of clipping
        slope_low = (self.standard[1] - self.standard[0]) / (own[1] - own[0])
        slope_high = (self.standard[-1] - self.standard[-2]) / (own[-1] - own[-2])
        out[below] = self.standard[0] + (array[below] - own[0]) * slope_low
        out[above] = self.standard[-1] + (array[above] - own[-1]) * slope_high
        return out.astype(np.float32)


def quantiles(array, mask=None, percentiles=range(1, 100)) -> np.ndarray:
    """Return the foreground percentiles of `array` (by default the 1st to the 99th)."""
    return np.percentile(_foreground(array, mask), list(percentiles))


def distribution_gap(arrays, masks=None) -> float:
    """Return how far apart the foreground intensity distributions of `arrays` are, free of units.

    The mean absolute difference between two volumes' 1st..99th percentiles, averaged over pairs, divided by the
    pooled 1st-99th percentile range: 0 when the histograms coincide, whatever scale the method outputs.
    """
    arrays = list(arrays)
    masks = list(masks) if masks is not None else [None] * len(arrays)
    if len(arrays) < 2:
        raise DataError("distribution_gap compares at least two volumes.")
    q = [quantiles(a, m) for a, m in zip(arrays, masks)]
    pooled = np.concatenate([_foreground(a, m) for a, m in zip(arrays, masks)])
    spread = float(np.percentile(pooled, 99) - np.percentile(pooled, 1))
    return float(np.mean([np.abs(a - b).mean() for a, b in combinations(q, 2)]) / spread)
