"""Make medical batches look like what an ImageNet backbone was trained on: 3 channels, its size, its statistics.

The all-in-one module is `medkit.models.Preprocess` (it also exports to ONNX); these are its steps,
one by one, for lesson 01 to show.
"""

import torch
import torch.nn.functional as F

from ..base.errors import DataError

__all__ = ["to_float", "to_three_channels", "resize", "normalize"]


def to_float(x) -> torch.Tensor:
    """Return a uint8 (0-255) or float batch as float32 in [0, 1] range units."""
    x = torch.as_tensor(x)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


def to_three_channels(x: torch.Tensor) -> torch.Tensor:
    """Repeat a grey batch (N, 1, H, W) on 3 channels; RGB batches pass through."""
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise DataError(f"Expected a batch (N, 1 or 3, H, W), got shape {tuple(x.shape)}.")
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a batch to size x size (bilinear; antialiased when shrinking)."""
    if x.ndim != 4:
        raise DataError(f"Expected a batch (N, C, H, W), got shape {tuple(x.shape)}.")
    if int(size) < 1:
        raise DataError(f"Image size must be >= 1, got {size}.")
    if tuple(x.shape[-2:]) == (size, size):
        return x
    return F.interpolate(to_float(x), size=(int(size), int(size)), mode="bilinear", align_corners=False,
                         antialias=x.shape[-1] > size)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """Return (x - mean) / std per channel."""
    mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    if x.shape[1] != mean.shape[1]:
        raise DataError(f"{x.shape[1]} channels but {mean.shape[1]} normalisation statistics.")
    return (to_float(x) - mean) / std
