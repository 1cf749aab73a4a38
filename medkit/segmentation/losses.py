"""Segmentation losses on mask logits: Dice, Dice + BCE, focal, and plain BCE (pixel-wise cross-entropy).

Why Dice helps with small lesions: when 1 pixel in 200 is foreground, cross-entropy is already
small for a model that predicts "background" everywhere, so that is where training settles. The
Dice loss measures overlap with the lesion itself, so an all-background prediction costs the most
it can (loss 1) however few lesion pixels there are. smp supplies the Dice and focal terms.
"""

import torch
from torch import nn

from ..base.errors import UnknownNameError

__all__ = ["LOSSES", "DiceBCELoss", "get_loss"]


class DiceBCELoss(nn.Module):
    """Dice loss plus pixel-wise binary cross-entropy: overlap-driven, with BCE's smooth early gradients."""

    def __init__(self, bce_weight: float = 1.0):
        super().__init__()
        from segmentation_models_pytorch.losses import DiceLoss

        self.dice, self.bce, self.bce_weight = DiceLoss("binary", from_logits=True), nn.BCEWithLogitsLoss(), bce_weight

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.dice(logits, target) + self.bce_weight * self.bce(logits, target)


def _dice():
    from segmentation_models_pytorch.losses import DiceLoss

    # batch Dice (pixels of the whole batch pooled): defined even when some images have no lesion
    return DiceLoss("binary", from_logits=True)


def _focal():
    from segmentation_models_pytorch.losses import FocalLoss

    return FocalLoss("binary", gamma=2.0)  # down-weights the many easy background pixels


LOSSES = {"dice": _dice, "dice_bce": DiceBCELoss, "focal": _focal, "bce": nn.BCEWithLogitsLoss}


def get_loss(name: str) -> nn.Module:
    """Return a loss taking (logits (N, 1, H, W), masks (N, 1, H, W) float): dice, dice_bce, focal or bce."""
    if name not in LOSSES:
        raise UnknownNameError(f"Unknown segmentation loss {name!r}; choose one of {sorted(LOSSES)}.")
    return LOSSES[name]()
