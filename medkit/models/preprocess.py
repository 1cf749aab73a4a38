"""Turn image batches into what a pretrained backbone expects: 3 channels, its size, its statistics."""

import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import DataError

__all__ = ["Preprocess", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Preprocess(nn.Module):
    """Map a uint8 (0-255) or float (0-1) batch (N, C, H, W) to a normalised float batch of size `image_size`.

    It is a module so that it can be exported to ONNX in front of the model (lesson 06): the
    preprocessing then travels with the model and is never re-typed.
    """

    def __init__(self, image_size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD, channels: int = 3):
        super().__init__()
        self.image_size, self.channels = int(image_size), int(channels)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise DataError(f"Expected a batch shaped (N, C, H, W), got shape {tuple(x.shape)}.")
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        if x.shape[1] == 1 and self.channels == 3:
            x = x.expand(-1, 3, -1, -1)  # grey X-rays feed an RGB backbone: same value on each channel
        elif x.shape[1] != self.channels:
            raise DataError(f"Expected 1 or {self.channels} channels, got {x.shape[1]}.")
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > self.image_size)
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"image_size={self.image_size}, mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
