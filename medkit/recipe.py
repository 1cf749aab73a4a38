"""The `medkit fit` / `medkit evaluate` recipe: the fine-tuning lesson 03 recommends, on any MedMNIST file.

Splits, so that the test images are never trained or tuned on:
- a file with `train`, `val` and `test` uses them as they are;
- a file with `train` and `val` only (like the bundled PneumoniaMNIST) carves a fixed, stratified
  held-out `test` out of `train` with `HELD_OUT_SEED` (the same carve as `medkit.data.pneumonia()`,
  so on that file it is the very same 624 images every lesson tests on) and trains on the rest;
- a file without `val` also carves a validation part out of the remaining train (fixed seed).
The decision threshold is chosen on validation only, then stored in the checkpoint config.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .data import HELD_OUT_SEED, HELD_OUT_SIZE, BatchLoader, load_npz, stratified_split
from .data.medmnist import available_splits
from .errors import DataError
from .metrics import classification_metrics

__all__ = ["RecipeConfig", "XrayAugment", "train_and_test", "load_splits", "held_out_size", "choose_threshold", "fit_recipe",
           "evaluate_checkpoint", "VAL_SEED", "METRICS_FILE"]

VAL_SEED = 20241  # carves a validation part from train when a file has none; fixed like HELD_OUT_SEED
METRICS_FILE = "metrics.json"


@dataclass
class RecipeConfig:
    """The defaults of `medkit fit`: the recipe lesson 03 ends with."""

    backbone: str = "efficientnet_lite0"  # the one backbone with ImageNet weights bundled offline
    weights: str | None = "DEFAULT"  # ImageNet weights; None trains from scratch
    image_size: int = 64  # 28 px X-rays upsampled: the pretrained filters expect larger structures
    epochs: int = 4  # in total, over the stages of `freeze`
    freeze: str = "gradual"  # head first, then the top groups, then all with discriminative lrs
    lr: float = 2e-3  # peak lr of the head group once the body trains (stem gets lr / 10)
    head_lr: float = 2e-3  # lr of the head-only first epoch
    weight_decay: float = 1e-4
    batch_size: int = 64
    loss: str = "ce"  # plain cross-entropy: with a chosen threshold, weighting buys nothing on AUC
    augment: bool = True  # small affine + intensity jitter: robustness to another scanner or site
    threshold: str = "youden"  # "youden" (max sensitivity + specificity - 1 on val) or "0.5"
    seed: int = 0
    threads: int | None = None  # torch threads; None leaves torch's default


class XrayAugment(nn.Module):
    """Random small affine (rotation, scale, shift) and intensity (brightness, contrast, gamma) changes.

    Works on a float [0, 1] batch (N, C, H, W) at the stored resolution, before resizing, so it is cheap.
    The intensity part mimics another detector's response curve (see `medkit.shift.Scanner`).
    """

    def __init__(self, degrees: float = 10.0, scale: float = 0.1, shift: float = 0.08, brightness: float = 0.1,
                 contrast: float = 0.15, gamma: float = 0.2, seed: int = 0):
        super().__init__()
        self.degrees, self.scale, self.shift = degrees, scale, shift
        self.brightness, self.contrast, self.gamma = brightness, contrast, gamma
        self.generator = torch.Generator().manual_seed(int(seed))

    def _uniform(self, n, spread):
        return (torch.rand(n, generator=self.generator) * 2 - 1) * spread

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        angle = self._uniform(n, math.radians(self.degrees))
        scale = 1 + self._uniform(n, self.scale)
        tx, ty = self._uniform(n, self.shift), self._uniform(n, self.shift)
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        gamma = torch.exp(self._uniform(n, self.gamma)).view(n, 1, 1, 1)
        contrast = (1 + self._uniform(n, self.contrast)).view(n, 1, 1, 1)
        brightness = self._uniform(n, self.brightness).view(n, 1, 1, 1)
        x = x.clamp(0, 1) ** gamma
        return ((x - 0.5) * contrast + 0.5 + brightness).clamp(0, 1)


def train_and_test(model, train, test, stages, *, image_size: int = 64, batch_size: int = 64, val=None,
                   loss_fn=None, augment: bool = False, seed: int = 0, progress: bool = False,
                   train_bn: bool = True) -> dict:
    """Train `model` through freezing `stages` on `train`, then return test metrics, seconds and history.

    The one experiment lessons 02 and 03 repeat (budgets, freeze depths, losses): same loaders, same loop.
    """
    from .freeze import fit_stages
    from .models import get_spec
    from .train import predict, seed_everything

    seed_everything(seed)
    pre = get_spec(model).preprocess(image_size)
    train_dl = BatchLoader(train, batch_size, shuffle=True, seed=seed, preprocess=pre,
                           augment=XrayAugment(seed=seed) if augment else None, drop_last=len(train) > batch_size)
    # scoring in batches of 64, not 256: at 96 px a 256-image forward pass alone adds ~600 MB of peak RSS
    val_dl = BatchLoader(val, 64, preprocess=pre) if val is not None else None
    start = time.perf_counter()
    history = fit_stages(model, train_dl, val_dl, stages, loss_fn=loss_fn, progress=progress, train_bn=train_bn)
    seconds = time.perf_counter() - start
    probs, labels = predict(model, BatchLoader(test, 64, preprocess=pre))
    return {**classification_metrics(labels, probs), "seconds": seconds, "history": history.rows}


def held_out_size(n_train: int) -> int:
    """Return how many images to hold out of a train split: PneumoniaMNIST's 624, at most a fifth of it."""
    return min(HELD_OUT_SIZE, n_train // 5)


def _carve(dataset, size, seed, name):
    keep, out = stratified_split(dataset.labels, test_size=size, seed=seed)
    return dataset.subset(np.sort(keep), f"{name}:train"), dataset.subset(np.sort(out), name)


def load_splits(path, classes=None) -> tuple[dict, dict]:
    """Return ({"train", "val", "test"} datasets, {split: where it came from}) for a MedMNIST-format file."""
    path = Path(path)
    have = set(available_splits(path))
    if "train" not in have:
        raise DataError(f"{path} has no train split (needs `train_images` and `train_labels`; it has splits "
                        f"{sorted(have) or 'none'}). Pass a MedMNIST-format .npz file.")
    train = load_npz(path, "train", classes)
    splits, source = {"train": train}, {"train": "train"}
    if "test" in have:
        splits["test"], source["test"] = load_npz(path, "test", classes), "test"
    else:
        size = held_out_size(len(train))
        splits["train"], splits["test"] = _carve(train, size, HELD_OUT_SEED, f"{path.stem}:test")
        source["test"] = f"{size} images carved from train (stratified, seed {HELD_OUT_SEED}); never trained or tuned on"
        source["train"] = "train minus the carved test"
    if "val" in have:
        splits["val"], source["val"] = load_npz(path, "val", classes), "val"
    else:
        size = max(2, len(splits["train"]) // 8)
        splits["train"], splits["val"] = _carve(splits["train"], size, VAL_SEED, f"{path.stem}:val")
        source["val"] = f"{size} images carved from train (stratified, seed {VAL_SEED})"
        source["train"] += " minus the carved val"
    _check_labels(path, splits)
    return splits, source


def _check_labels(path, splits):
    k = int(max(ds.labels.max() for ds in splits.values())) + 1
    present = np.unique(splits["train"].labels)
    if len(present) < 2:
        raise DataError(f"{path}: the training labels hold a single class ({present.tolist()}); need at least two.")
    if len(present) != k:
        missing = sorted(set(range(k)) - set(present.tolist()))
        raise DataError(f"{path}: labels must be 0..K-1 with every class in train; labels go up to {k - 1} but "
                        f"classes {missing} have no training image. Relabel them consecutively.")
    sizes = {ds.images.shape[1] for ds in splits.values()}
    if not all(8 <= s <= 1024 for s in sizes):
        raise DataError(f"{path}: image sizes {sorted(sizes)} px are outside what medkit fit handles (28 to 224).")


def choose_threshold(labels, probs, rule: str = "youden") -> float:
    """Return the positive-class threshold for a binary task, chosen on validation data only."""
    if rule in ("0.5", 0.5):
        return 0.5
    if rule != "youden":
        raise DataError(f"Unknown threshold rule {rule!r}; use 'youden' or '0.5'.")
    from sklearn.metrics import roc_curve

    labels, probs = np.asarray(labels), np.asarray(probs)
    if probs.ndim == 2:
        if probs.shape[1] != 2:
            return 0.5  # multi-class predicts the argmax; no threshold to choose
        probs = probs[:, 1]
    if len(np.unique(labels)) < 2:
        return 0.5
    fpr, tpr, thr = roc_curve(labels, probs)
    best = int(np.argmax(tpr - fpr))
    return float(np.clip(thr[best], 0.0, 1.0))


def _loaders(splits, pre, cfg: RecipeConfig):
    augment = XrayAugment(seed=cfg.seed) if cfg.augment else None
    train_dl = BatchLoader(splits["train"], cfg.batch_size, shuffle=True, seed=cfg.seed, preprocess=pre,
                           augment=augment, drop_last=len(splits["train"]) > cfg.batch_size)
    val_dl = BatchLoader(splits["val"], 256, preprocess=pre)
    return train_dl, val_dl


def fit_recipe(data, out_dir, cfg: RecipeConfig | None = None, progress: bool = True, log=print) -> dict:
    """Train the recipe on a MedMNIST-format file, write checkpoint + metrics.json into `out_dir`, return metrics.

    Args:
        data: path of a `.npz` file with `{split}_images` / `{split}_labels`.
        out_dir: checkpoint folder (`config.json`, `model.pt`) and `metrics.json`.
        cfg: a `RecipeConfig` (defaults: the lesson 03 recipe).
    """
    from .checkpoint import save_checkpoint
    from .freeze import fit_stages, schedule
    from .losses import make_loss
    from .models import get_backbone, get_spec
    from .train import predict, seed_everything

    cfg = cfg or RecipeConfig()
    start = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    spec = get_spec(cfg.backbone)  # an unknown backbone fails here, before any data is read
    stages = schedule(cfg.freeze, cfg.epochs, cfg.lr, cfg.head_lr, n_groups=len(spec.groups))
    if not 16 <= cfg.image_size <= 512:
        raise DataError(f"--image-size {cfg.image_size} is out of range; use 16 to 512 (64 is the recipe).")
    pre = spec.preprocess(cfg.image_size)  # a size too small for this backbone's features (ConfigError) fails here too
    splits, source = load_splits(data)
    classes = splits["train"].classes
    seed_everything(cfg.seed)
    model = get_backbone(cfg.backbone, weights=cfg.weights, num_classes=len(classes))
    train_dl, val_dl = _loaders(splits, pre, cfg)
    loss_fn = make_loss(cfg.loss, splits["train"].labels, len(classes))
    log(f"medkit fit: {cfg.backbone} ({cfg.weights or 'random init'}) at {cfg.image_size} px, "
        f"{len(splits['train'])} train / {len(splits['val'])} val images, {cfg.epochs} epochs, freeze={cfg.freeze}")
    history = fit_stages(model, train_dl, val_dl, stages, weight_decay=cfg.weight_decay, loss_fn=loss_fn,
                         progress=progress)
    for row in history.rows:
        log("  " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()))
    probs, labels = predict(model, val_dl)
    threshold = choose_threshold(labels, probs, cfg.threshold) if probs.shape[1] == 2 else 0.5
    val_metrics = classification_metrics(labels, probs, threshold)
    seconds = time.perf_counter() - start
    save_checkpoint(out_dir, model, image_size=cfg.image_size, classes=classes, threshold=threshold,
                    recipe=asdict(cfg), splits=source, data=str(data))
    metrics = {"val": val_metrics, "threshold": threshold, "train_seconds": seconds,
               "history": history.rows, "splits": source, "recipe": asdict(cfg),
               "n": {k: len(v) for k, v in splits.items()}}
    (Path(out_dir) / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    return metrics


def evaluate_checkpoint(ckpt_dir, data, split: str = "test", backbone: str | None = None,
                        batch_size: int = 256) -> dict:
    """Return auc, acc, sensitivity, specificity, balanced_acc, n of a checkpoint on one split of a file.

    The splits are those `fit_recipe` uses, so `split="test"` on a train+val file is the carved held-out part.
    """
    from .checkpoint import load_checkpoint
    from .models import get_spec
    from .train import predict

    if split not in ("train", "val", "test"):
        raise DataError(f"Unknown split {split!r}; use train, val or test.")
    model, config = load_checkpoint(ckpt_dir, backbone=backbone)
    splits, source = load_splits(data)
    ds = splits[split]
    if ds.labels.max() >= config["num_classes"]:
        raise DataError(f"{data}:{split} has label {ds.labels.max()}, out of range for the checkpoint's "
                        f"{config['num_classes']} classes {config['classes']}: wrong data file for this model?")
    spec = get_spec(config["backbone"])
    pre = spec.preprocess(config["image_size"])
    probs, labels = predict(model, BatchLoader(ds, batch_size, preprocess=pre))
    if probs.shape[1] != config["num_classes"]:
        raise DataError(f"The model predicts {probs.shape[1]} classes, its config says {config['num_classes']}.")
    out = classification_metrics(labels, probs, config.get("threshold", 0.5))
    if probs.shape[1] > 2:
        out.update(_macro_sens_spec(labels, probs.argmax(1), probs.shape[1]))
    out.update({"split": split, "source": source[split]})
    return out


def _macro_sens_spec(labels, pred, k) -> dict:
    """Return one-vs-rest sensitivity and specificity averaged over the classes present (multi-class)."""
    sens = [float((pred[labels == c] == c).mean()) for c in range(k) if (labels == c).any()]
    spec = [float((pred[labels != c] != c).mean()) for c in range(k) if (labels != c).any()]
    return {"sensitivity": float(np.mean(sens)), "specificity": float(np.mean(spec))}
