"""Per-image overlap and distance metrics for binary masks, with bootstrap intervals over images.

Conventions for empty masks (a lesion-free image is a real case, not an edge case):
- Dice and IoU of an empty prediction on an empty mask are 1: the model correctly found nothing.
  A lesion missed entirely, or one predicted where there is none, scores 0.
- HD95 is 0 when both masks are empty and undefined (NaN) when exactly one is: there is no
  boundary to measure from. `segmentation_metrics` averages HD95 over the defined images and
  reports how many were undefined, rather than inventing a distance.
HD95 follows MONAI: the larger of the two directed 95th-percentile boundary distances, computed with
scipy's Euclidean distance transform (in pixels, or in mm with `spacing`).
"""

import numpy as np
from scipy import ndimage

from ..base.errors import DataError
from ..evaluation.evaluate import Interval, mean_ci
from .dataset import check_masks

__all__ = ["binarize", "dice_per_image", "iou_per_image", "hd95_per_image", "mean_ci", "segmentation_metrics"]


def binarize(probs, threshold: float = 0.5) -> np.ndarray:
    """Return uint8 masks: 1 where a probability is at least `threshold`."""
    probs = np.asarray(probs, dtype=np.float64)
    if not np.all(np.isfinite(probs)) or probs.min(initial=0) < 0 or probs.max(initial=0) > 1:
        raise DataError("binarize expects probabilities in [0, 1]; apply a sigmoid to logits first.")
    return (probs >= threshold).astype(np.uint8)


def _pair(pred, true) -> tuple[np.ndarray, np.ndarray]:
    """Return (pred, true) as boolean (N, H, W) after checking shapes and values."""
    pred, true = np.asarray(pred), np.asarray(true)
    if pred.shape != true.shape:
        raise DataError(f"Predicted masks {pred.shape} and true masks {true.shape} do not align; "
                        "predict at the size of the true masks.")
    if pred.ndim == 2:
        pred, true = pred[None], true[None]
    if pred.ndim != 3 or len(pred) == 0:
        raise DataError(f"Expected masks shaped (N, H, W) or (H, W) with N >= 1, got {pred.shape}.")
    pred = check_masks(pred, (0, 1), "predicted masks")
    true = check_masks(true, (0, 1), "true masks")
    return pred.astype(bool), true.astype(bool)


def _overlap(pred, true):
    pred, true = _pair(pred, true)
    inter = (pred & true).reshape(len(pred), -1).sum(1).astype(np.float64)
    sizes = pred.reshape(len(pred), -1).sum(1) + true.reshape(len(true), -1).sum(1)
    return inter, sizes.astype(np.float64)


def dice_per_image(pred, true) -> np.ndarray:
    """Return the Dice coefficient 2|P∩T| / (|P| + |T|) of each image; 1 when both masks are empty."""
    inter, sizes = _overlap(pred, true)
    return np.where(sizes == 0, 1.0, 2 * inter / np.maximum(sizes, 1))


def iou_per_image(pred, true) -> np.ndarray:
    """Return the intersection over union |P∩T| / |P∪T| of each image; 1 when both masks are empty."""
    inter, sizes = _overlap(pred, true)
    union = sizes - inter
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def _boundary(mask: np.ndarray) -> np.ndarray:
    # the pixels of a mask that touch the background (8-connected), as MONAI and the surface-distance package take them
    return mask & ~ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool))


def _hd95(pred: np.ndarray, true: np.ndarray, spacing) -> float:
    if not pred.any() and not true.any():
        return 0.0
    if not pred.any() or not true.any():
        return float("nan")
    bp, bt = _boundary(pred), _boundary(true)
    # distance from every pixel to the nearest boundary pixel of the other mask
    to_true = ndimage.distance_transform_edt(~bt, sampling=spacing)
    to_pred = ndimage.distance_transform_edt(~bp, sampling=spacing)
    return float(max(np.percentile(to_true[bp], 95), np.percentile(to_pred[bt], 95)))


def hd95_per_image(pred, true, spacing=1.0) -> np.ndarray:
    """Return each image's 95th-percentile Hausdorff distance (pixels, or mm with `spacing`); see module notes."""
    pred, true = _pair(pred, true)
    return np.array([_hd95(p, t, spacing) for p, t in zip(pred, true)])


def segmentation_metrics(pred, true, *, spacing=1.0, n_boot: int = 1000, seed: int = 0) -> dict:
    """Return mean Dice, IoU and HD95 over images, each as an Interval, plus n and the undefined HD95 count."""
    dice, iou, hd = dice_per_image(pred, true), iou_per_image(pred, true), hd95_per_image(pred, true, spacing)
    out = {"dice": mean_ci(dice, n_boot=n_boot, seed=seed), "iou": mean_ci(iou, n_boot=n_boot, seed=seed)}
    out["hd95"] = mean_ci(hd, n_boot=n_boot, seed=seed) if np.isfinite(hd).any() else Interval(*(3 * [float("nan")]))
    out["hd95_undefined"] = int((~np.isfinite(hd)).sum())
    out["n"] = len(dice)
    return out
