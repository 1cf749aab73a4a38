"""A small, plain training loop: seeded, only trainable parameters optimised, one-cycle schedule."""

import random
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..base.errors import ConfigError, DataError
from ..base.progress import progress as show_progress  # `progress` is these functions' on/off argument
from ..evaluation.metrics import auc as auc_score

__all__ = ["reestimate_batchnorm", "seed_everything", "History", "fit", "predict", "logits_of", "SCORE_BATCH", "DEVICES", "available_devices",
           "pick_device"]

# images per scoring or caching pass, in the lessons and in `medkit fit`: at 96 px a 64-image forward pass adds
# ~200 MB to the kernel's peak and 32 about 100 MB (at 128 px, 350 and 175), and workshop lessons are held to
# Binder's 1 GB (bench_notebooks.py); at 224 px one efficientnet_lite0 image holds ~15 MB of live activations, so
# 128 images peaked `medkit fit` at 3.1 GB and 32 stay ~0.5 GB (benchmarks/RECIPE.md)
SCORE_BATCH = 32


# what `--device` accepts; medkit.cli.DEVICE_CHOICES repeats it so `--help` needs no torch (a test keeps them equal)
DEVICES = ("auto", "cpu", "cuda", "mps")


def available_devices() -> list[str]:
    """Return the devices torch can use here, fastest first ("cpu" always last)."""
    found = ["cuda"] if torch.cuda.is_available() else []
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return [*found, "cpu"]


def pick_device(name: str = "auto") -> str:
    """Return the torch device to run on: "auto" is cuda if present, else mps, else cpu; a missing one is refused."""
    if name not in DEVICES:
        raise ConfigError(f"Unknown device {name!r}; choose one of {', '.join(DEVICES)}.")
    here = available_devices()
    if name == "auto":
        return here[0]
    if name not in here:
        raise ConfigError(f"device {name!r} is not available on this machine (torch {torch.__version__} sees "
                          f"{', '.join(here)}). Pass --device auto or one of those.")
    return name


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch so the same seed gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


@dataclass
class History:
    """One row per epoch: train loss, validation loss and AUC, seconds."""

    rows: list = field(default_factory=list)

    @property
    def last(self) -> dict:
        return self.rows[-1] if self.rows else {}

    def __repr__(self) -> str:
        return "\n".join(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())
                         for r in self.rows)


def logits_of(output):
    """Return the logits of a model output (Inception returns a namedtuple while training)."""
    return output.logits if hasattr(output, "logits") else output


@contextmanager
def _bn_momentum(model: nn.Module, n_chunks: int):
    """Scale BatchNorm momenta so `n_chunks` updates per step average over as many images as one update did."""
    saved = [(m, m.momentum) for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.momentum is not None]
    for m, momentum in saved:
        m.momentum = 1 - (1 - momentum) ** (1 / n_chunks)
    try:
        yield
    finally:
        for m, momentum in saved:
            m.momentum = momentum


def _chunks(x, y, size, loss_fn):
    """Yield (x, y, share) parts of at most `size` images; shares turn their mean losses into the batch's mean."""
    weight = getattr(loss_fn, "weight", None)
    # a class-weighted mean divides by the batch's summed weights, not its count
    per_image = weight[y] if isinstance(weight, torch.Tensor) and y.ndim == 1 else torch.ones(len(y))
    total = per_image.sum()
    for xc, yc, wc in zip(x.split(size), y.split(size), per_image.split(size)):
        yield xc, yc, wc.sum() / total


def _backward(model, x, y, loss_fn, micro_batch) -> float:
    """Accumulate the gradient of the batch's mean loss, `micro_batch` images at a time; return that loss."""
    if not micro_batch or len(y) <= micro_batch:
        loss = loss_fn(logits_of(model(x)), y)
        loss.backward()
        return loss.item()
    total = 0.0
    with _bn_momentum(model, -(-len(y) // micro_batch)):
        for xc, yc, share in _chunks(x, y, micro_batch, loss_fn):
            loss = loss_fn(logits_of(model(xc)), yc) * share
            loss.backward()  # frees this part's activations before the next part's forward
            total += loss.item()
    return total


@torch.inference_mode()  # no autograd bookkeeping at all; measured in benchmarks/bench_fit_224.py
def predict(model: nn.Module, loader, device: str = "cpu", progress: bool = False):
    """Return (probabilities (N, K), labels (N,)) as numpy arrays for every batch of `loader`."""
    model.eval().to(device)
    probs, labels = [], []
    for x, y in show_progress(loader, "predict", enabled=progress):
        probs.append(torch.softmax(logits_of(model(x.to(device))).float(), dim=1).cpu())
        labels.append(y)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy()


def fit(model: nn.Module, train_dl, val_dl=None, *, epochs: int = 3, lr: float = 1e-3, weight_decay: float = 1e-4,
        loss_fn=None, optimizer=None, device: str = "cpu", progress: bool = True,
        micro_batch: int | None = None) -> History:
    """Train `model` for `epochs` with AdamW and a one-cycle schedule; return the per-epoch history.

    Args:
        model: any classifier; only parameters with requires_grad are optimised (frozen ones stay put).
        train_dl, val_dl: iterables of (x, y) batches, e.g. `medkit.data.BatchLoader`.
        epochs, lr, weight_decay: the schedule; `lr` is the peak of the one-cycle.
        loss_fn: defaults to cross-entropy.
        optimizer: pass one to use discriminative learning rates (param groups with their own lr).
        micro_batch: run forward and backward on at most this many images at a time and accumulate their
            gradients into one step per batch: autograd keeps every activation of a part until its backward,
            so this bounds the memory. BatchNorm then normalises each part with its own statistics (its
            momentum is scaled to average over as many images), so numbers differ from whole batches.
    """
    model.to(device)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    if optimizer is None:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=weight_decay)
    max_lr = [g.get("lr", lr) for g in optimizer.param_groups]
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=max(1, epochs * len(train_dl)))
    history = History()
    for epoch in range(epochs):
        start, model = time.perf_counter(), model.train()
        total, seen = 0.0, 0
        for x, y in show_progress(train_dl, f"epoch {epoch + 1}/{epochs}", enabled=progress):
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            loss = _backward(model, x, y, loss_fn, micro_batch)
            optimizer.step()
            scheduler.step()
            total, seen = total + loss * len(y), seen + len(y)
        row = {"epoch": epoch + 1, "train_loss": total / max(seen, 1)}
        if val_dl is not None:
            probs, labels = predict(model, val_dl, device)
            row["val_loss"] = float(nn.functional.nll_loss(torch.log(torch.from_numpy(probs).clamp_min(1e-7)),
                                                            torch.from_numpy(labels)))
            row["val_auc"] = auc_score(labels, probs) if len(np.unique(labels)) > 1 else float("nan")
        row["seconds"] = time.perf_counter() - start
        history.rows.append(row)
    model.zero_grad(set_to_none=True)  # the last batch's gradients are as large as the weights; nobody reads them
    return history


@torch.no_grad()
def reestimate_batchnorm(model: nn.Module, batches, norms=None, device: str = "cpu") -> nn.Module:
    """Re-estimate the running statistics of `norms` (default: every BatchNorm in `model`) on `batches`; no labels.

    AdaBN (Li et al., 2016, arXiv:1603.04779): the statistics become the plain average over the batches (momentum
    None), weights stay as trained, every other layer stays in eval mode. Returns `model` in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)] if norms is None else norms
    if not norms:
        raise DataError("reestimate_batchnorm: no BatchNorm layer to re-estimate.")
    model.eval().to(device)
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch
        m.train()
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        model(x.to(device).float())
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()
