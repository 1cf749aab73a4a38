"""Train a segmenter with medkit's plain loop, predict masks, and run one seeded configuration end to end."""

import time

import numpy as np
import torch

from ..base.errors import DataError
from ..core.train import SCORE_BATCH, History, fit, seed_everything
from .dataset import MaskLoader, SegmentationDataset
from .losses import get_loss
from .metrics import binarize, dice_per_image, hd95_per_image, iou_per_image, segmentation_metrics
from .models import build_segmenter, freeze_encoder, parameter_counts

__all__ = ["fit_segmenter", "predict_masks", "train_and_evaluate", "result_row"]


def fit_segmenter(model, train: SegmentationDataset, *, loss: str = "dice", steps: int = 100, batch_size: int = 16,
                  lr: float = 3e-3, flip: bool = True, seed: int = 0, device: str = "cpu",
                  progress: bool = False) -> History:
    """Train `model` for a fixed number of optimiser `steps` (whatever the number of masks) and return its history."""
    if steps < 1:
        raise DataError(f"steps={steps}: train for at least one step.")
    loader = MaskLoader(train, batch_size=min(batch_size, len(train)), steps=int(steps), flip=flip, seed=seed)
    return fit(model, loader, epochs=1, lr=lr, loss_fn=get_loss(loss), device=device, progress=progress)


@torch.no_grad()
def predict_masks(model, images, batch_size: int = SCORE_BATCH, device: str = "cpu") -> np.ndarray:
    """Return foreground probabilities (N, H, W) for grey uint8 images (N, H, W) or a SegmentationDataset."""
    images = images.images if isinstance(images, SegmentationDataset) else np.asarray(images)
    if images.ndim != 3:
        raise DataError(f"Expected grey images (N, H, W), got shape {images.shape}.")
    model.eval().to(device)
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    out = [torch.sigmoid(model(x[i:i + batch_size].to(device))[:, 0]).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy()


def train_and_evaluate(train: SegmentationDataset, test: SegmentationDataset, *, encoder: str = "efficientnet_lite0",
                       weights="DEFAULT", loss: str = "dice", frozen: bool = False, steps: int = 100,
                       batch_size: int = 16, lr: float = 3e-3, encoder_depth: int = 4, seed: int = 0,
                       n_boot: int = 1000, device: str = "cpu", keep_model: bool = False,
                       val: SegmentationDataset | None = None) -> dict:
    """Seed, build, train and test one configuration; return its metrics, per-image scores and predictions.

    The returned dict holds `dice`, `iou`, `hd95` (Intervals), `hd95_undefined`, `n`, `seconds`, `trainable`
    (parameters trained), per-image `dice_per_image`, `iou_per_image`, `hd95_per_image`, `probs`, and with
    `keep_model=True` the trained `model` (off by default: a learning curve trains many, ~13 MB of weights each).
    With `val`, `val_dice` is the mean Dice on it too: the number a choice (a loss, an lr) is made on.
    """
    seed_everything(seed)  # the random encoder and the decoder start from the same draw for a given seed
    model = build_segmenter(encoder, weights, encoder_depth=encoder_depth)
    if frozen:
        freeze_encoder(model)
    start = time.perf_counter()
    history = fit_segmenter(model, train, loss=loss, steps=steps, batch_size=batch_size, lr=lr, seed=seed,
                            device=device)
    probs = predict_masks(model, test, device=device)
    pred = binarize(probs)
    out = segmentation_metrics(pred, test.masks, n_boot=n_boot, seed=seed)
    out.update(seconds=time.perf_counter() - start, train_loss=history.last["train_loss"],
               trainable=sum(t for t, _ in parameter_counts(model).values()),
               dice_per_image=dice_per_image(pred, test.masks), iou_per_image=iou_per_image(pred, test.masks),
               hd95_per_image=hd95_per_image(pred, test.masks), probs=probs)
    if val is not None:
        out["val_dice"] = float(dice_per_image(binarize(predict_masks(model, val, device=device)), val.masks).mean())
    if keep_model:
        out["model"] = model
    return out


def result_row(result: dict, **labels) -> dict:
    """Return the plain numbers of a `train_and_evaluate` result, after `labels`, as one table row."""
    row = dict(labels)
    for key in ("dice", "iou", "hd95"):
        row.update({key: result[key].estimate, f"{key}_low": result[key].low, f"{key}_high": result[key].high})
    row.update({k: result[k] for k in ("hd95_undefined", "n", "trainable")})
    if "val_dice" in result:
        row["val_dice"] = result["val_dice"]
    row["seconds"] = round(result["seconds"], 1)
    return row
