"""One backbone, many modalities: probe, fine-tune, scratch and a freeze-depth sweep on any splits (lesson 10).

Every function takes the {"train", "val", "test"} dict of `medkit.data.chest_xrays`, `breast_ultrasound` or
`dermoscopy` and returns AUCs on both held-out parts: choices are made on `val_auc`, results reported on `test_auc`.
Every trained run takes the same number of optimiser steps (same epochs, batch size and training images), whatever
is frozen and whatever the weights, so only what is compared differs.
"""

import time

from ..base.errors import DataError
from ..core.features import (
    TensorLoader,
    cache_activations,
    extract_features,
    linear_probe,
    probe_metrics,
    split_at_group,
)
from ..core.freeze import Stage, fit_stages
from ..core.train import SCORE_BATCH, predict, seed_everything
from ..data import HELD_OUT_SEED, BatchLoader, subsample
from ..evaluation.metrics import auc
from ..models import get_backbone, get_spec

__all__ = ["EVAL_PARTS", "draw_train", "probe", "fit_frozen", "choose_lr", "freeze_depth_sweep", "group_depths"]

EVAL_PARTS = ("val", "test")  # val to choose, test to report


def _check_splits(splits: dict) -> None:
    missing = [p for p in ("train", *EVAL_PARTS) if p not in splits]
    if missing:
        raise DataError(f"transfer needs 'train', 'val' and 'test' parts; {missing} missing (have {sorted(splits)}). "
                        "Use medkit.data.chest_xrays, breast_ultrasound or dermoscopy.")


def draw_train(splits: dict, n_train: int | None, seed: int, n_held_out: int | None = None) -> dict:
    """Return `splits` with `n_train` training images drawn with `seed` (whole patients where known).

    Val and test stay as they are, or, with `n_held_out` (the smoke profile's speed knob), shrink to about that many
    images each, drawn with the fixed `HELD_OUT_SEED` so that they never change with `seed`.
    """
    _check_splits(splits)
    out = {}
    for part, ds in splits.items():
        n, draw_seed = (n_train, seed) if part == "train" else (n_held_out, HELD_OUT_SEED)
        out[part] = ds if n is None else ds.subset(subsample(ds.labels, n, draw_seed, groups=ds.groups))
    return out


def group_depths(backbone: str = "efficientnet_lite0") -> list[int]:
    """Return the freeze depths k = 0 (train everything) .. n-1 (train the head only) of a backbone's layer groups."""
    return list(range(len(get_spec(backbone).groups)))


def probe(splits: dict, *, backbone: str = "efficientnet_lite0", image_size: int = 64, C: float = 0.05,
          batch_size: int = 64, device: str = "cpu") -> dict:
    """Return {"val_auc", "test_auc"} of a logistic regression on the frozen ImageNet body's pooled features."""
    _check_splits(splits)
    kw = dict(image_size=image_size, batch_size=batch_size, progress=False, device=device)
    model = linear_probe(*extract_features(backbone, splits["train"], **kw), C=C)
    return {f"{part}_auc": probe_metrics(model, *extract_features(backbone, splits[part], **kw))["auc"]
            for part in EVAL_PARTS}


def _loaders(model, k: int, splits: dict, image_size: int, batch_size: int, seed: int):
    """Return (net, train loader, {part: loader}): images for k = 0, the frozen groups' cached outputs for k >= 1."""
    pre = get_spec(model).preprocess(image_size)
    train = splits["train"]
    drop = len(train) > batch_size
    if k == 0:
        return (model, BatchLoader(train, batch_size, shuffle=True, seed=seed, preprocess=pre, drop_last=drop),
                {p: BatchLoader(splits[p], SCORE_BATCH, preprocess=pre) for p in EVAL_PARTS})
    lower, upper = split_at_group(model, k)  # the frozen groups run once, in eval mode: BatchNorm as ImageNet left it
    acts = {p: cache_activations(lower, BatchLoader(splits[p], SCORE_BATCH, preprocess=pre)) for p in ("train", *EVAL_PARTS)}
    return (upper, TensorLoader(acts["train"], train.labels, batch_size, shuffle=True, seed=seed, drop_last=drop),
            {p: TensorLoader(acts[p], splits[p].labels, 256) for p in EVAL_PARTS})


def fit_frozen(splits: dict, k: int = 0, *, weights="DEFAULT", lr: float = 3e-3, epochs: int = 4,
               batch_size: int = 32, image_size: int = 64, seed: int = 0,
               backbone: str = "efficientnet_lite0", device: str = "cpu") -> dict:
    """Train a backbone with its first `k` layer groups frozen; return its val and test AUC, steps and seconds.

    Args:
        splits: {"train", "val", "test"} ImageDatasets with two classes.
        k: frozen layer groups, 0 (fine-tune everything) to n-1 (the head only). Frozen means frozen: those
            groups, BatchNorm included, keep their weights and statistics, so their outputs are computed once.
        weights: "DEFAULT" (ImageNet) or None (random init: training from scratch).
        lr, epochs, batch_size: the one-cycle schedule; every run with the same ones takes the same number of steps.
        seed: draws the new head, the random init and the batch order.
        device: where the trained part runs ("cuda" in the full profile); frozen groups are cached on the CPU.
    """
    _check_splits(splits)
    seed_everything(seed)
    model = get_backbone(backbone, weights=weights, num_classes=splits["train"].num_classes)
    if not 0 <= k < len(get_spec(model).groups):
        raise DataError(f"fit_frozen(k={k}): {backbone} has {len(get_spec(model).groups)} layer groups; "
                        f"k must be one of {group_depths(backbone)}.")
    start = time.perf_counter()
    net, train_dl, eval_dls = _loaders(model, k, splits, image_size, batch_size, seed)
    fit_stages(model, train_dl, None, [Stage(epochs, k, lr)], net=net, progress=False, train_bn=k == 0, device=device)
    out = {f"{part}_auc": auc(*reversed(predict(net, dl, device))) for part, dl in eval_dls.items()}
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {**out, "k": k, "lr": lr, "steps": epochs * len(train_dl), "trainable_params": trainable,
            "seconds": time.perf_counter() - start}


def choose_lr(splits: dict, lrs, **kwargs) -> tuple[float, dict]:
    """Return (the lr with the best val AUC, {lr: the run of `fit_frozen(splits, lr=lr, **kwargs)`}); test is never read."""
    runs = {lr: fit_frozen(splits, lr=lr, **kwargs) for lr in lrs}
    return max(runs, key=lambda lr: runs[lr]["val_auc"]), runs


def freeze_depth_sweep(splits: dict, depths=None, *, seeds=(0,), **kwargs) -> list[dict]:
    """Return one `fit_frozen` row (with its seed) per freeze depth k and seed: how deep the ImageNet layers are reusable."""
    depths = group_depths(kwargs.get("backbone", "efficientnet_lite0")) if depths is None else depths
    return [{"seed": seed, **fit_frozen(splits, k, seed=seed, **kwargs)} for seed in seeds for k in depths]
