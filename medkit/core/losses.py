"""Losses for imbalanced classes: class-weighted cross-entropy and focal loss (lesson 03)."""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import DataError, UnknownNameError

__all__ = ["class_weights", "FocalLoss", "make_loss", "LOSSES"]

LOSSES = ("ce", "weighted_ce", "focal", "weighted_focal")


def class_weights(labels, num_classes: int | None = None) -> torch.Tensor:
    """Return per-class weights n / (K * count_k) (scikit-learn's "balanced"), so each class weighs the same."""
    labels = np.asarray(labels).astype(np.int64).ravel()
    if labels.size == 0 or labels.min() < 0:
        raise DataError("class_weights needs a non-empty array of labels 0..K-1.")
    num_classes = int(num_classes or labels.max() + 1)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    if len(counts) > num_classes:
        raise DataError(f"Label {labels.max()} is out of range for {num_classes} classes.")
    if (counts == 0).any():
        raise DataError(f"Class(es) {np.flatnonzero(counts == 0).tolist()} have no examples; a weight would be infinite.")
    return torch.tensor(len(labels) / (num_classes * counts), dtype=torch.float32)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by (1 - p_true)**gamma, so easy examples count less.

    With gamma=0 it equals `nn.CrossEntropyLoss(weight=weight)`; `weight` plays the role of the paper's alpha.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, reduction: str = "mean"):
        super().__init__()
        if gamma < 0:
            raise DataError(f"Focal loss needs gamma >= 0, got {gamma}.")
        if reduction not in ("mean", "sum", "none"):
            raise UnknownNameError(f"Unknown reduction {reduction!r}; use 'mean', 'sum' or 'none'.")
        self.gamma, self.reduction = float(gamma), reduction
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight, dtype=torch.float32))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logp = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None])[:, 0]
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        w = self.weight[target] if self.weight is not None else torch.ones_like(loss)
        loss = loss * w
        if self.reduction == "none":
            return loss
        if self.reduction == "sum":
            return loss.sum()
        return loss.sum() / w.sum()  # the same normalisation as weighted cross-entropy

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}"


def make_loss(name: str = "ce", labels=None, num_classes: int | None = None, gamma: float = 2.0) -> nn.Module:
    """Return a loss by name: "ce", "weighted_ce", "focal" or "weighted_focal" (weights from `labels`)."""
    if name not in LOSSES:
        raise UnknownNameError(f"Unknown loss {name!r}; choose one of {', '.join(LOSSES)}.")
    weight = None
    if name.startswith("weighted"):
        if labels is None:
            raise DataError(f"Loss {name!r} needs the training labels to compute class weights.")
        weight = class_weights(labels, num_classes)
    if name.endswith("focal"):
        return FocalLoss(gamma=gamma, weight=weight)
    return nn.CrossEntropyLoss(weight=weight)
