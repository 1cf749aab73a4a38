"""Small networks trained from scratch on grey images (lessons 08 and 09), and their preprocessing."""

import torch
from torch import nn

from ..base.errors import DataError
from .preprocess import Preprocess

__all__ = ["SmallCNN", "grey_preprocess", "GREY_MEAN", "GREY_STD"]

GREY_MEAN, GREY_STD = (0.5,), (0.25,)  # X-rays in [0, 1]: centre and scale, no ImageNet statistics involved


def grey_preprocess(image_size: int = 28) -> Preprocess:
    """Return the preprocessing of the small from-scratch networks: one grey channel, `image_size` px."""
    return Preprocess(image_size, GREY_MEAN, GREY_STD, channels=1)


class SmallCNN(nn.Module):
    """A three-block CNN for 28-64 px grey images: the encoder of lessons 08 and 09.

    `features(x)` returns the pooled `feature_dim` vector; `forward` adds a linear head when
    `num_classes` is set. `norm="group"` swaps BatchNorm for GroupNorm, which has no running
    statistics: what federated averaging needs across sites with different data (lesson 09).
    """

    def __init__(self, in_channels: int = 1, width: int = 32, num_classes: int = 0, norm: str = "batch"):
        super().__init__()
        if norm not in ("batch", "group"):
            raise DataError(f"norm must be 'batch' or 'group', got {norm!r}.")

        def block(cin, cout):
            layer = nn.BatchNorm2d(cout) if norm == "batch" else nn.GroupNorm(8, cout)
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), layer, nn.ReLU(inplace=True),
                                 nn.MaxPool2d(2))

        widths = (width, 2 * width, 4 * width)
        self.body = nn.Sequential(block(in_channels, widths[0]), block(widths[0], widths[1]), block(widths[1], widths[2]),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.feature_dim = widths[-1]
        self.head = nn.Linear(self.feature_dim, num_classes) if num_classes else nn.Identity()

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))
