"""Freezing on layer groups, the fastai way: `freeze_to(k)`, `freeze()`, `unfreeze()` (lesson 03).

A backbone's registry entry splits it into layer groups, stem first and head last
(`medkit.models.parameter_groups`). Freezing the first k groups keeps their ImageNet weights;
the optimiser then only receives what still requires grad. As in fastai, BatchNorm layers stay
trainable in frozen groups by default (`train_bn=True`): re-estimating their statistics on X-rays
is cheap and is most of what a frozen body needs to adapt to a new modality.
"""

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..base.errors import ConfigError, DataError, UnknownNameError
from ..models import get_spec, parameter_groups
from .train import History, fit

__all__ = ["freeze_to", "freeze", "unfreeze", "freeze_report", "discriminative_lrs", "param_groups",
           "make_optimizer", "Stage", "fit_stages", "schedule", "STRATEGIES", "relative_change"]

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _bn_param_names(model: nn.Module) -> set:
    return {f"{m}.{p}" if m else p for m, mod in model.named_modules() if isinstance(mod, _BN)
            for p, _ in mod.named_parameters(recurse=False)}


def freeze_to(model: nn.Module, k: int, train_bn: bool = True) -> nn.Module:
    """Freeze the first `k` layer groups and unfreeze the rest; negative `k` counts from the head (fastai's rule)."""
    groups = parameter_groups(model)
    n = len(groups)
    if not isinstance(k, int) or isinstance(k, bool) or not -n <= k <= n:
        raise DataError(f"freeze_to({k!r}): {get_spec(model).name} has {n} layer groups, so k must be an int in [-{n}, {n}].")
    k = k % n if k < 0 else k
    bn = _bn_param_names(model) if train_bn else set()
    for i, group in enumerate(groups):
        for name, param in group:
            param.requires_grad_(i >= k or name in bn)
    return model


def freeze(model: nn.Module, train_bn: bool = True) -> nn.Module:
    """Freeze every group but the head (`freeze_to(-1)`)."""
    return freeze_to(model, -1, train_bn=train_bn)


def unfreeze(model: nn.Module) -> nn.Module:
    """Make every parameter trainable (`freeze_to(0)`)."""
    return freeze_to(model, 0)


def freeze_report(model: nn.Module):
    """Return a DataFrame with, per layer group, its first layers and its trainable and frozen parameter counts."""
    import pandas as pd

    spec = get_spec(model)
    rows = []
    for i, (prefixes, group) in enumerate(zip(spec.groups, parameter_groups(model))):
        trainable = sum(p.numel() for _, p in group if p.requires_grad)
        total = sum(p.numel() for _, p in group)
        rows.append({"group": i, "layers": ", ".join(prefixes[:3]) + (" ..." if len(prefixes) > 3 else ""),
                     "params": total, "trainable": trainable, "frozen": total - trainable})
    df = pd.DataFrame(rows).set_index("group")
    df.loc["total"] = ["", df["params"].sum(), df["trainable"].sum(), df["frozen"].sum()]
    return df


def discriminative_lrs(lr: float, n_groups: int, ratio: float = 1.0) -> list[float]:
    """Return one lr per group, geometric from lr / ratio (stem) to lr (head): fastai's `slice(lr / ratio, lr)`."""
    if ratio < 1 or n_groups < 1:
        raise DataError(f"discriminative_lrs needs ratio >= 1 and at least one group; got ratio={ratio}, n={n_groups}.")
    if n_groups == 1:
        return [float(lr)]
    return [float(lr / ratio ** (1 - i / (n_groups - 1))) for i in range(n_groups)]


def param_groups(model: nn.Module, lr: float, ratio: float = 1.0) -> list[dict]:
    """Return optimiser param groups with discriminative lrs, holding only parameters that require grad."""
    groups = parameter_groups(model)
    lrs = discriminative_lrs(lr, len(groups), ratio)
    out = [{"params": [p for _, p in g if p.requires_grad], "lr": group_lr} for g, group_lr in zip(groups, lrs)]
    return [g for g in out if g["params"]]


def make_optimizer(model: nn.Module, lr: float, ratio: float = 1.0, weight_decay: float = 1e-4) -> torch.optim.Optimizer:
    """Return AdamW over the trainable parameters, with discriminative lrs across layer groups."""
    groups = param_groups(model, lr, ratio)
    if not groups:
        raise DataError("Every parameter is frozen; unfreeze at least one layer group before training.")
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


@dataclass(frozen=True)
class Stage:
    """One stage of a fine-tuning schedule: freeze the first `freeze_to` groups, then train `epochs` at `lr`."""

    epochs: int  # passes over the training data in this stage (one one-cycle per stage, like fastai's fine_tune)
    freeze_to: int  # groups kept frozen: -1 = head only, 0 = everything trains
    lr: float  # peak lr of the head group
    lr_ratio: float = 1.0  # head lr / stem lr: > 1 gives discriminative lrs


# Named strategies for `medkit fit --freeze`: how many groups stay frozen, stage by stage.
# Each maps (epochs, lr) to a list of stages; "top" is `medkit fit`'s default (benchmarks/RECIPE.md).
STRATEGIES = {
    "top": "head only for 1 epoch, then the top layer group and the head (the lower groups never train)",
    "gradual": "head only for 1 epoch, then the top half, then everything with discriminative lrs",
    "head": "train only the new head (and BatchNorm); the body keeps its ImageNet weights",
    "all": "unfreeze everything at once, one lr for all groups",
    "discriminative": "unfreeze everything at once, lrs from lr/10 (stem) to lr (head)",
    "freeze_to:K": "keep the first K layer groups frozen, train the rest",
}


def schedule(strategy: str, epochs: int, lr: float, head_lr: float | None = None, n_groups: int = 5) -> list[Stage]:
    """Return the stages of a named freezing strategy (see `STRATEGIES`) for `epochs` epochs in total.

    `lr` is the head group's peak lr in every stage, head-only ones included; `head_lr` (default: `lr`)
    overrides it only for head-only stages (the warm-up of "gradual" and "top", and "head").
    """
    if not isinstance(epochs, int) or isinstance(epochs, bool) or epochs < 1:
        raise ConfigError(f"epochs must be an integer >= 1, got {epochs!r}.")
    for name, value in (("lr", lr), ("head_lr", head_lr)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ConfigError(f"{name} must be a positive number, got {value!r} (1e-3 is a common start).")
    head_lr = lr if head_lr is None else head_lr
    if strategy == "gradual":
        if epochs == 1:
            return [Stage(1, -1, head_lr)]
        if epochs == 2:
            return [Stage(1, -1, head_lr), Stage(1, 0, lr, 10.0)]
        return [Stage(1, -1, head_lr), Stage(1, n_groups // 2, lr, 3.0), Stage(epochs - 2, 0, lr, 10.0)]
    if strategy == "head":
        return [Stage(epochs, -1, head_lr)]
    if strategy == "top":
        top = [Stage(epochs - 1, n_groups - 2, lr)] if epochs > 1 else []
        return [Stage(1, -1, head_lr), *top]
    if strategy == "all":
        return [Stage(epochs, 0, lr)]
    if strategy == "discriminative":
        return [Stage(epochs, 0, lr, 10.0)]
    if isinstance(strategy, str) and strategy.startswith("freeze_to:"):
        k = strategy.partition(":")[2]
        if k.lstrip("-").isdigit() and -n_groups <= int(k) < n_groups:
            return [Stage(epochs, int(k), lr)]
    raise UnknownNameError(f"Unknown freeze strategy {strategy!r}; choose one of {', '.join(STRATEGIES)} "
                           f"(K an integer from {-n_groups} to {n_groups - 1}).")


def fit_stages(model: nn.Module, train_dl, val_dl, stages, *, weight_decay: float = 1e-4, loss_fn=None,
               device: str = "cpu", progress: bool = True, train_bn: bool = True, net: nn.Module | None = None,
               micro_batch: int | None = None):
    """Train through `stages` (gradual unfreezing); return the concatenated `medkit.core.train.History`.

    Each stage freezes its groups, builds AdamW over what is trainable with its discriminative lrs,
    and runs one one-cycle of `medkit.core.train.fit`. Rows carry the stage index and `freeze_to`.
    `net` is what the loaders' batches go through (default `model`); with cached activations it is
    the upper part of `model` (`medkit.core.features.split_at_group`), whose parameters are `model`'s own.
    `micro_batch` goes to `medkit.core.train.fit` (gradient accumulation over parts of each batch).
    """
    history, epoch0, start = History(), 0, time.perf_counter()
    for i, stage in enumerate(stages):
        freeze_to(model, stage.freeze_to, train_bn=train_bn)
        optimizer = make_optimizer(model, stage.lr, stage.lr_ratio, weight_decay)
        part = fit(model if net is None else net, train_dl, val_dl, epochs=stage.epochs, lr=stage.lr, weight_decay=weight_decay,
                   loss_fn=loss_fn, optimizer=optimizer, device=device, progress=progress, micro_batch=micro_batch)
        for row in part.rows:
            history.rows.append({**row, "epoch": epoch0 + row["epoch"], "stage": i, "freeze_to": stage.freeze_to,
                                 "elapsed": time.perf_counter() - start})
        epoch0 += stage.epochs
    return history


@torch.no_grad()
def relative_change(before: dict, model: nn.Module) -> list[float]:
    """Return, per layer group, ||w_after - w_before|| / ||w_before|| (how far fine-tuning moved its weights).

    `before` is a `model.state_dict()` copied before training (e.g. `{k: v.clone() for ...}`).
    """
    out = []
    for group in parameter_groups(model):
        diff = sum(float((p.detach() - before[n]).pow(2).sum()) for n, p in group)
        norm = sum(float(before[n].pow(2).sum()) for n, _ in group)
        out.append((diff / norm) ** 0.5 if norm > 0 else float("nan"))
    return out
