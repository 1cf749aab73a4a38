"""MRI intensity normalisation: MR values have no physical unit, so scanners and sessions disagree.

Three standard fixes (lesson 01): z-score (optionally within a foreground mask, so the black
background does not dominate the statistics), percentile clipping (robust to a few hot pixels),
and histogram matching to a reference image (Nyúl-style standardisation, via scikit-image).
"""

import numpy as np

from ..base.errors import DataError

__all__ = ["foreground_mask", "zscore", "percentile_clip", "histogram_match"]


def _float(image, what="image") -> np.ndarray:
    image = np.asarray(image, dtype=np.float32)
    if image.size == 0 or not np.isfinite(image).all():
        raise DataError(f"{what} must be a non-empty array of finite numbers (shape {image.shape}).")
    return image


def _mask(image: np.ndarray, mask) -> np.ndarray:
    if mask is None:
        return np.ones(image.shape, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != image.shape:
        raise DataError(f"Mask shape {mask.shape} does not match image shape {image.shape}.")
    if mask.sum() < 2:
        raise DataError(f"The mask selects {int(mask.sum())} pixel(s); it needs at least 2 to estimate statistics.")
    return mask


def foreground_mask(image) -> np.ndarray:
    """Return a boolean mask of the foreground (tissue), by Otsu's threshold."""
    from skimage.filters import threshold_otsu

    image = _float(image)
    if image.max() == image.min():
        return np.ones(image.shape, dtype=bool)
    return image > threshold_otsu(image)


def zscore(image, mask=None) -> np.ndarray:
    """Return (image - mean) / std, the statistics taken inside `mask` (default: every pixel); float32."""
    image = _float(image)
    inside = image[_mask(image, mask)]
    std = float(inside.std())
    if std == 0:
        raise DataError("The image is constant inside the mask; a z-score is undefined.")
    return ((image - inside.mean()) / std).astype(np.float32)


def percentile_clip(image, lower: float = 1.0, upper: float = 99.0, mask=None) -> np.ndarray:
    """Clip to the [lower, upper] percentiles (inside `mask`) and rescale to [0, 1]; float32."""
    if not 0 <= lower < upper <= 100:
        raise DataError(f"Percentiles must satisfy 0 <= lower < upper <= 100; got {lower}, {upper}.")
    image = _float(image)
    low, high = np.percentile(image[_mask(image, mask)], [lower, upper])
    if high <= low:
        return np.zeros_like(image)
    return np.clip((image - low) / (high - low), 0.0, 1.0).astype(np.float32)


def histogram_match(image, reference) -> np.ndarray:
    """Return `image` with its intensity histogram matched to `reference` (scikit-image); float32."""
    from skimage.exposure import match_histograms

    image, reference = _float(image), _float(reference, "reference")
    if image.ndim != reference.ndim:
        raise DataError(f"Image and reference must have the same number of dimensions: {image.shape} vs "
                        f"{reference.shape}.")
    return match_histograms(image, reference).astype(np.float32)
