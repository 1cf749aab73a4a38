"""What both `medkit fit` recipes share (one class per image in `single_label`, findings in `multilabel`).

The configuration, where the frozen part of the network is cut for caching, the training and validation loaders
(over images, or over the frozen part's cached outputs), the output-folder check and the data fingerprint live
here, below both recipes, so neither has to import the other's module to reach them.
"""

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..base.errors import ConfigError, DataError
from ..core.features import TensorLoader, cache_activations, layer_chain, split_at_group
from ..core.train import SCORE_BATCH
from ..data import BatchLoader
from ..data.augment import Augment
from .recipe import RecipeConfig

__all__ = ["METRICS_FILE", "cache_cut", "can_cut", "image_loaders", "cached_loaders", "check_out_dir",
           "data_fingerprint", "pick_part", "average_states"]

METRICS_FILE = "metrics.json"


def cache_cut(stages, n_groups: int) -> int:
    """Return how many lower layer groups stay frozen in every stage (0: some stage trains them all)."""
    return min(st.freeze_to % n_groups if st.freeze_to < 0 else st.freeze_to for st in stages)


def data_fingerprint(splits: dict) -> str:
    """Return a sha256 of every part's images and labels, in part order: same data, same fingerprint."""
    digest = hashlib.sha256()
    for name in sorted(splits):
        ds = splits[name]
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(ds.labels).tobytes())
        digest.update(np.ascontiguousarray(ds.images).tobytes())
    return digest.hexdigest()


def check_out_dir(out_dir, overwrite: bool) -> None:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder; name a new folder for the checkpoint.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {out} is not empty; fit would overwrite what is there. Name a new folder, "
                          "or pass --overwrite (overwrite=True) to replace its checkpoint.")


def can_cut(model) -> bool:
    """Return True when `model` is a chain of layers `split_at_group` can cut (so its lower part can be cached)."""
    try:
        layer_chain(model)
    except DataError:
        return False
    return True


def image_loaders(splits, pre, cfg: RecipeConfig) -> tuple[BatchLoader, BatchLoader]:
    """Return (train, val) loaders over the images, with the x-ray augmentation on train when `cfg.augment`."""
    augment = Augment.xray(seed=cfg.seed) if cfg.augment else None
    train_dl = BatchLoader(splits["train"], cfg.batch_size, shuffle=True, seed=cfg.seed, preprocess=pre,
                           augment=augment, drop_last=len(splits["train"]) > cfg.batch_size)
    return train_dl, BatchLoader(splits["val"], SCORE_BATCH, preprocess=pre)


def average_states(states: list[dict]) -> dict:
    """Return the element-wise mean of state dicts of one architecture (integer buffers keep the first's value)."""
    first = states[0]
    return {k: (torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v)
            for k, v in first.items()}


def cached_loaders(model, cut: int, splits, pre, cfg: RecipeConfig, progress: bool, device: str = "cpu"):
    """Return (upper part of `model`, train and val loaders over the frozen lower part's cached outputs)."""
    lower, upper = split_at_group(model, cut)
    acts = {part: cache_activations(lower, BatchLoader(splits[part], SCORE_BATCH, preprocess=pre), progress=progress,
                                    device=device)
            for part in ("train", "val")}
    train = splits["train"]
    train_dl = TensorLoader(acts["train"], train.labels, cfg.batch_size, shuffle=True, seed=cfg.seed,
                            drop_last=len(train) > cfg.batch_size)
    return upper, train_dl, TensorLoader(acts["val"], splits["val"].labels, 256)


def pick_part(source, split: str, data) -> str:
    """Return the part of `source` to score: `split`, or with "auto" its test part, else all of it."""
    if split != "auto":
        if split not in source.splits:
            raise DataError(f"{data} has no {split!r} part; it has {sorted(source.splits)}. Pass --split with one of "
                            "them, or leave --split auto.")
        return split
    for part in ("test", "all"):
        if part in source.splits:
            return part
    raise DataError(f"{data} holds parts {sorted(source.splits)} but no test part to score; pass --split.")
