"""Contrastive self-supervised pretraining (SimCLR) on unlabelled X-rays, sized for one CPU core (lesson 08).

SimCLR (Chen et al., 2020) shows the encoder two random views of each image and trains it to tell
which views come from the same image (the NT-Xent loss). No label is used. The views decide what the
features ignore: here crops, small rotations, contrast, blur and noise, i.e. what changes between
two acquisitions of the same chest, never what changes between a normal and a pneumonic lung.

The loss is the ten-line NT-Xent below rather than the `lightly` library's: lightly 1.6 requires
pytorch-lightning, hydra-core, torchmetrics and an aiohttp stack (14 packages) that nothing else
here uses. `tests/test_ssl.py` checks ours against a loop written straight from the paper's formula.
"""

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..base.errors import DataError
from ..base.progress import progress as show_progress  # `progress` is these functions' on/off argument
from ..core.features import linear_probe
from ..core.train import SCORE_BATCH, fit, predict, seed_everything
from ..data.dataset import ImageDataset
from ..data.loaders import BatchLoader
from ..data.splits import subsample
from ..evaluation.metrics import auc as auc_score
from ..models.small import SmallCNN, grey_preprocess

__all__ = ["SmallCNN", "grey_preprocess", "ContrastiveViews", "nt_xent", "SimCLR", "pretrain", "classifier",
           "encode", "probe_auc", "probe_budgets", "fit_and_score", "choose_lr"]


@dataclass
class ContrastiveViews:
    """Random views of a float [0, 1] batch (N, 1, H, W): crop-and-rotate, contrast, blur, noise.

    Everything is drawn from one seeded generator, per image, in one vectorised call, so a view
    costs a fraction of the encoder's forward pass.
    """

    min_scale: float = 0.6  # smallest crop side, as a share of the image side
    max_rotation: float = 10.0  # degrees; chest X-rays are roughly upright
    flip: bool = False  # left-right flip moves the heart: off by default
    contrast: float = 0.4  # contrast and brightness jitter, +-
    gamma: float = 0.3  # intensity-curve jitter (scanner response), +- in log space
    blur_p: float = 0.3  # chance of a 3x3 blur
    noise: float = 0.03  # std of Gaussian noise
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.min_scale <= 1:
            raise DataError(f"min_scale must be in (0, 1], got {self.min_scale}.")
        self.generator = torch.Generator().manual_seed(int(self.seed))

    def _uniform(self, n, low, high):
        return torch.rand(n, generator=self.generator) * (high - low) + low

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or not x.is_floating_point():
            raise DataError(f"ContrastiveViews expects a float batch (N, C, H, W) in [0, 1], got {x.dtype} {tuple(x.shape)}.")
        n = len(x)
        scale = self._uniform(n, self.min_scale, 1.0)
        angle = self._uniform(n, -self.max_rotation, self.max_rotation) * math.pi / 180
        shift = (1 - scale)[:, None] * self._uniform(2 * n, -1, 1).view(n, 2)  # stay inside the image
        flip = torch.where(torch.rand(n, generator=self.generator) < 0.5, -1.0, 1.0) if self.flip else torch.ones(n)
        cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
        theta = torch.stack([torch.stack([cos * flip, -sin, shift[:, 0]], 1), torch.stack([sin * flip, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        gamma = torch.exp(self._uniform(n, -self.gamma, self.gamma)).view(n, 1, 1, 1)
        x = x.clamp(1e-4, 1) ** gamma
        contrast = self._uniform(n, 1 - self.contrast, 1 + self.contrast).view(n, 1, 1, 1)
        brightness = self._uniform(n, -self.contrast / 4, self.contrast / 4).view(n, 1, 1, 1)
        x = (x - 0.5) * contrast + 0.5 + brightness
        blur = (torch.rand(n, generator=self.generator) < self.blur_p).view(n, 1, 1, 1)
        blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
        x = torch.where(blur, blurred, x)
        x = x + self.noise * torch.randn(x.shape, generator=self.generator)
        return x.clamp(0, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Return SimCLR's NT-Xent loss: each view must pick its partner among the 2N - 1 other views.

    Args:
        z1, z2: projections (N, D) of the two views; row i of z1 and row i of z2 come from the same image.
        temperature: divides the cosine similarities; lower values weigh hard negatives more.
    """
    if z1.shape != z2.shape or z1.ndim != 2 or len(z1) < 2:
        raise DataError(f"nt_xent needs two (N >= 2, D) projections of the same shape, got {tuple(z1.shape)} and "
                        f"{tuple(z2.shape)}.")
    if not temperature > 0:
        raise DataError(f"temperature must be positive, got {temperature}.")
    n = len(z1)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T) / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))  # not itself
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, partner)


class SimCLR(nn.Module):
    """An encoder plus SimCLR's projection head (an MLP); the head is discarded after pretraining."""

    def __init__(self, encoder: SmallCNN, projection_dim: int = 64):
        super().__init__()
        self.encoder = encoder
        dim = encoder.feature_dim
        self.projection = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True), nn.Linear(dim, projection_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection(self.encoder.features(x))


def pretrain(encoder: SmallCNN, dataset: ImageDataset, *, epochs: int = 10, batch_size: int = 256, lr: float = 3e-3,
             temperature: float = 0.5, views: ContrastiveViews | None = None, seed: int = 0,
             progress: bool = False) -> list[float]:
    """Pretrain `encoder` with SimCLR on the images of `dataset` (labels unused); return the loss per epoch.

    Args:
        encoder: a `SmallCNN` (trained in place).
        dataset: the unlabelled images; `dataset.labels` is never read.
        epochs, batch_size, lr: AdamW with a one-cycle schedule; larger batches give more negatives per step.
        temperature: NT-Xent temperature (0.5 suits small batches; the paper used 0.1 with 4096).
        views: the augmentation that makes the two views (default `ContrastiveViews(seed=seed)`).
    """
    if len(dataset) < 2 * batch_size:
        batch_size = max(2, len(dataset) // 2)  # a few full batches beat one ragged one
    views = views or ContrastiveViews(seed=seed)
    torch.manual_seed(seed)
    model = SimCLR(encoder)
    loader = BatchLoader(dataset, batch_size, shuffle=True, seed=seed, drop_last=True)
    normalise = grey_preprocess(dataset.image_size[0])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(1, epochs * len(loader)))
    losses = []
    epoch_iter = show_progress(range(epochs), "SimCLR", enabled=progress)
    for _ in epoch_iter:
        model.train()
        total = 0.0
        for x, _labels in loader:
            x = x.float() / 255.0
            loss = nt_xent(model(normalise(views(x))), model(normalise(views(x))), temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item()
        losses.append(total / len(loader))
    encoder.eval()
    return losses


def classifier(encoder: SmallCNN, num_classes: int = 2) -> SmallCNN:
    """Return a copy of `encoder` with a fresh `num_classes` linear head, ready to fine-tune."""
    model = copy.deepcopy(encoder)
    model.head = nn.Linear(model.feature_dim, int(num_classes))
    return model


@torch.no_grad()
def encode(encoder: SmallCNN, dataset: ImageDataset, batch_size: int = 256) -> np.ndarray:
    """Return the pooled features (N, feature_dim) of every image through a frozen `SmallCNN`, in order.

    (Registry backbones have theirs in `medkit.core.features.extract_features`, lesson 02.)
    """
    if not isinstance(encoder, SmallCNN):
        raise DataError(f"encode expects a medkit.methods.ssl.SmallCNN, got {type(encoder).__name__}; for registry backbones "
                        "use medkit.core.features.extract_features.")
    encoder.eval()
    loader = BatchLoader(dataset, batch_size, preprocess=grey_preprocess(dataset.image_size[0]))
    return torch.cat([encoder.features(x) for x, _ in loader]).numpy()


def probe_auc(train_features, train_labels, test_features, test_labels, C: float = 0.1) -> float:
    """Fit lesson 02's linear probe on frozen features and return its test AUC."""
    if len(test_features) != len(test_labels):
        raise DataError(f"{len(test_features)} test feature rows for {len(test_labels)} test labels.")
    return auc_score(test_labels, linear_probe(train_features, train_labels, C=C).predict_proba(test_features))


def probe_budgets(features: dict, train_labels, test_labels, budgets, seeds=(0,)):
    """Linear-probe each feature set at each label budget and seed; return a long table (pandas).

    Args:
        features: {name: (train_features, test_features)}, all computed on the same images.
        budgets: numbers of labelled training images (None: all); each draw is stratified.
        seeds: one stratified draw of labelled images per seed, shared by every feature set.
    """
    import pandas as pd

    rows = []
    for budget in budgets:
        for seed in seeds:
            index = subsample(train_labels, budget, seed=seed)
            for name, (train_x, test_x) in features.items():
                rows.append({"features": name, "labels": len(index), "seed": seed,
                             "auc": probe_auc(train_x[index], np.asarray(train_labels)[index], test_x, test_labels)})
    return pd.DataFrame(rows)


def fit_and_score(build, train: ImageDataset, score_on: ImageDataset, *, preprocess, epochs: int, lr: float,
                  batch_size: int = 32, seed: int = 0):
    """Seed, build a classifier with `build()`, train it on `train` and return (model, AUC on `score_on`)."""
    seed_everything(seed)
    model = build()
    fit(model, BatchLoader(train, batch_size, shuffle=True, seed=seed, preprocess=preprocess), epochs=epochs, lr=lr,
        progress=False)
    probs, labels = predict(model, BatchLoader(score_on, SCORE_BATCH, preprocess=preprocess))
    return model, auc_score(labels, probs)


def choose_lr(build, train: ImageDataset, val: ImageDataset, *, lrs, **kwargs):
    """Return (the lr of `lrs` with the best validation AUC, {lr: validation AUC}); the test set is never used.

    Each baseline of lesson 08 gets its own learning rate this way, with the same epochs (optimiser steps).
    """
    if not lrs:
        raise DataError("choose_lr needs at least one learning rate to try, e.g. lrs=(1e-3, 3e-3).")
    scores = {float(lr): fit_and_score(build, train, val, lr=lr, **kwargs)[1] for lr in lrs}
    return max(scores, key=scores.get), scores
