"""`medkit adapt`: a site that can label a few images adapts a `medkit fit` checkpoint, into a NEW folder.

This uses labels from the new site. k images (whole patients, stratified) are drawn from `data` with a seed;
the home model is recalibrated on them (`medkit.evaluation.adapt.recalibrate`: threshold, temperature, prior),
or its classifier head alone is fine-tuned on their pooled features with the backbone frozen ("head"). The
result is written as a new checkpoint whose config records the adaptation, including the paths of the k
images, so `medkit evaluate` on that site skips them: they are never scored.

Temperature and prior shift are folded into the head's weights (logits / T, + shift on the positive logit),
so every reader of a checkpoint (evaluate, predict, export) sees the adapted probabilities without knowing
about adaptation; the threshold goes where `medkit fit` puts its own.
"""

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..base.errors import ConfigError, DataError
from ..core.checkpoint import CheckpointConfig, data_path, load_checkpoint, read_config, save_checkpoint
from ..core.features import TensorLoader, split_at_group
from ..core.train import SCORE_BATCH, fit, reestimate_batchnorm, seed_everything
from ..data import BatchLoader, load_source
from ..data.contrast import contrast_of
from ..evaluation.adapt import METHODS, draw_labelled, recalibrate
from ..models import get_spec, split_head
from .config import RecipeConfig, check_out_dir, pick_part

__all__ = ["trained_norms", "ADAPT_METHODS", "adapt_checkpoint", "site_images", "site_features", "fit_head", "home_prior",
           "adaptation_images"]

ADAPT_METHODS = (*METHODS, "head", "batchnorm")
HEAD_EPOCHS = 30  # full-batch steps on k pooled features: seconds on a CPU (benchmarks/bench_few_labels.py)
HEAD_LR = 1e-3  # small: the head starts from the home model's and should move only as far as k labels justify


def site_images(ckpt_dir, data, log=None, value_range=None):
    """Return (config, the part of `data` that `medkit evaluate` would score) after checking they belong together.

    `value_range`: the range float images of `data` were saved in; None takes the checkpoint's own (as evaluate does).
    """
    config = read_config(ckpt_dir)
    if config["num_classes"] != 2 or config.get("task") == "multilabel":
        raise DataError(f"{ckpt_dir} is not a binary single-label checkpoint; `medkit adapt` recalibrates one "
                        "operating point, so it needs two classes.")
    if data_path(config) == str(Path(data).resolve()):
        raise DataError(f"{data} is the data {ckpt_dir} was trained on; `medkit adapt` is for a NEW site. Pass "
                        "a folder or CSV of that site's images.")
    recipe = config.get("recipe", {})
    value_range = value_range if value_range is not None else recipe.get("value_range", RecipeConfig.value_range)
    source = load_source(data, image_size=int(config["image_size"]), group_by=recipe.get("group_by", "auto"),
                         carve=False, log=log, contrast=contrast_of(config), value_range=tuple(value_range))
    if list(source.classes) != list(config["classes"]):
        raise DataError(f"{data} has classes {source.classes}, {ckpt_dir} was trained on {config['classes']}: they "
                        "must match by name and order. Rename the class folders or labels.")
    ds = source.splits[pick_part(source, "auto", data)]
    if "paths" not in ds.meta:
        raise DataError(f"{data} does not name its images by file path (an .npz?); `medkit adapt` stores the paths "
                        "of the images it used so evaluation can skip them. Use a class-folder tree or a CSV.")
    return config, ds


@torch.inference_mode()
def site_features(model: nn.Module, ds, config: dict, batch_size: int = SCORE_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Return (pooled features (N, D), home probabilities (N, 2)) of every image in one pass over the backbone."""
    body, head = split_head(model)
    pre = CheckpointConfig.from_dict(config).preprocess()  # the stored mean/std, as export uses
    feats = _body_features(body.to(memory_format=torch.channels_last), BatchLoader(ds, batch_size, preprocess=pre))
    probs = torch.softmax(head.eval()(torch.from_numpy(feats)), dim=1).numpy().astype(np.float64)
    return feats, probs


def _body_features(body: nn.Module, loader) -> np.ndarray:
    """Return the body's outputs for every batch of `loader` as float32 (N, D)."""
    body.eval()
    return torch.cat([body(x).float().flatten(1) for x, _ in loader]).numpy()


def fit_head(head: nn.Module, feats: np.ndarray, labels: np.ndarray, *, epochs: int = HEAD_EPOCHS, lr: float = HEAD_LR,
             seed: int = 0) -> nn.Module:
    """Return a copy of `head` fine-tuned on (features, labels) of the k images: full batch, cross-entropy."""
    import copy

    seed_everything(seed)
    tuned = copy.deepcopy(head).train()
    loader = TensorLoader(torch.from_numpy(np.asarray(feats, dtype=np.float32)), labels, batch_size=len(labels),
                          shuffle=True, seed=seed)
    fit(tuned, loader, epochs=int(epochs), lr=float(lr), progress=False)
    return tuned.eval()


def home_prior(config: dict) -> float | None:
    """Return the positive class's share of the home training part (the checkpoint's split report), or None."""
    rows = [r for r in config.get("splits", {}).get("report", []) if r.get("part") == "train"]
    if not rows:
        return None
    counts = [rows[0].get("classes", {}).get(name, 0) for name in config["classes"]]
    return counts[1] / sum(counts) if sum(counts) else None


def _fold_into_head(model: nn.Module, temperature: float, shift: float) -> None:
    """Divide the head's logits by `temperature` and add `shift` to the positive one, in its weights."""
    linear = model.get_submodule(get_spec(model).head)
    if not isinstance(linear, nn.Linear):
        raise ConfigError(f"The head of {get_spec(model).name} is a {type(linear).__name__}, not one linear layer; "
                          "a temperature cannot be folded into it. Use --method threshold or head.")
    with torch.no_grad():
        linear.weight /= temperature
        linear.bias /= temperature
        # softmax depends on l1 - l0 only: half the shift on each side keeps both logits near where they were
        linear.bias += torch.tensor([-shift / 2, shift / 2], dtype=linear.bias.dtype)


def adapt_checkpoint(ckpt_dir, data, out_dir, k: int = 25, seed: int = 0, method: str = "threshold", *,
                     epochs: int = HEAD_EPOCHS, lr: float = HEAD_LR, log=print, value_range=None) -> dict:
    """Adapt a binary `medkit fit` checkpoint to a new site with k of its labelled images; write it to `out_dir`.

    Args:
        ckpt_dir: the home checkpoint (never modified).
        data: the new site's images (class folders or CSV, the classes of the checkpoint).
        out_dir: a new, empty folder for the adapted checkpoint; refused when it is `ckpt_dir` or not empty.
        k, seed: how many labelled images to draw (whole patients when file names give patient keys) and the draw.
        method: "threshold", "temperature", "temperature+threshold" or "prior" (`medkit.evaluation.adapt`), or
            "head": fine-tune only the classifier head on the k images' pooled features for `epochs` full-batch
            steps at `lr` (backbone frozen), then decide at 0.5 (a threshold chosen on the images the head was
            just fit on would be chosen on its training data).
        value_range: the range float images of `data` were saved in (None: the checkpoint's own, as evaluate reads).

    Returns the adaptation record written under `adaptation` in the new config.
    """
    if method not in ADAPT_METHODS:
        raise DataError(f"Unknown method {method!r}; choose one of {', '.join(ADAPT_METHODS)}.")
    src, out = Path(ckpt_dir).resolve(), Path(out_dir).resolve()
    if out == src or src in out.parents:
        raise ConfigError(f"--out {out_dir} is the input checkpoint (or inside it); `medkit adapt` never overwrites "
                          "its input. Name a new folder.")
    check_out_dir(out_dir, overwrite=False)
    config, ds = site_images(ckpt_dir, data, log=log, value_range=value_range)
    if config.get("adaptation"):
        raise ConfigError(f"{ckpt_dir} is already adapted ({config['adaptation']['method']}, k="
                          f"{config['adaptation']['k']}); adapt the home checkpoint it came from instead.")
    model, _ = load_checkpoint(ckpt_dir)
    if method == "batchnorm":
        return _adapt_batchnorm(model, config, ds, ckpt_dir, data, out_dir, log)
    used = draw_labelled(ds.labels, k, seed, ds.groups)
    sub = ds.subset(used)
    feats, probs = site_features(model, sub, config)
    record = {"method": method, "k": int(k), "n_labelled": len(used), "seed": int(seed),
              "data": str(Path(data).resolve()), "images": [str(Path(p).resolve()) for p in sub.meta["paths"]],
              "patients": None if sub.groups is None else sorted(set(sub.groups.tolist())),
              "home_checkpoint": str(src), "home_threshold": float(config.get("threshold", 0.5))}
    if method == "head":
        head = model.get_submodule(get_spec(model).head)
        head.load_state_dict(fit_head(head, feats, sub.labels, epochs=epochs, lr=lr, seed=seed).state_dict())
        record.update({"temperature": 1.0, "prior_shift": 0.0, "threshold": 0.5, "epochs": int(epochs), "lr": lr,
                       "note": ""})
    else:
        rec = recalibrate(probs, sub.labels, method, home_threshold=record["home_threshold"],
                          home_prior=home_prior(config), rule=config.get("recipe", {}).get("threshold", "youden"))
        _fold_into_head(model, rec.temperature, rec.prior_shift)
        record.update({"temperature": rec.temperature, "prior_shift": rec.prior_shift, "threshold": rec.threshold,
                       "new_prior": rec.new_prior, "note": rec.note})
    _save(model, config, out_dir, record)
    if log:
        log(f"medkit adapt: {method} on {len(used)} labelled image(s) of {data} (seed {seed}): threshold "
            f"{record['threshold']:.6g}, temperature {record['temperature']:.4g}; wrote {out_dir}. `medkit evaluate` "
            "on this site skips those images." + (f" Note: {record['note']}" if record["note"] else ""))
    return record


def trained_norms(model: nn.Module, config: dict) -> list:
    """Return the BatchNorm layers `medkit fit` trained: those above the cached, frozen groups (all when none were)."""
    cut = int((config.get("data") or {}).get("cached_groups") or 0) if isinstance(config.get("data"), dict) else 0
    modules = split_at_group(model, cut)[1] if cut else model
    return [m for m in modules.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _adapt_batchnorm(model, config, ds, ckpt_dir, data, out_dir, log) -> dict:
    """Re-estimate the trained layers' BatchNorm statistics on the site's images, without their labels (AdaBN)."""
    norms = trained_norms(model, config)
    # the frozen ImageNet groups keep their statistics: the layers above them were trained on those outputs, and
    # re-estimating every layer at once is what made adaptation worse in issue 28 (AUC 0.949 -> 0.890)
    pre = CheckpointConfig.from_dict(config).preprocess()  # the stored mean/std, as export uses
    reestimate_batchnorm(model, BatchLoader(ds, SCORE_BATCH, preprocess=pre), norms)
    record = {"method": "batchnorm", "k": 0, "n_labelled": 0, "seed": None, "data": str(Path(data).resolve()),
              "images": [], "n_unlabelled": len(ds), "batchnorm_layers": len(norms), "labels_used": False,
              "home_checkpoint": str(Path(ckpt_dir).resolve()), "home_threshold": float(config.get("threshold", 0.5)),
              "threshold": float(config.get("threshold", 0.5)), "temperature": 1.0, "prior_shift": 0.0,
              "note": "statistics from the site's own images, labels unused: scores on that site are transductive"}
    _save(model, config, out_dir, record)
    if log:
        log(f"medkit adapt: batchnorm statistics of {len(norms)} trained layer(s) re-estimated on {len(ds)} unlabelled "
            f"image(s) of {data} (no label read); home threshold {record['threshold']:.4g} kept; wrote {out_dir}.")
    return record


def _save(model, config, out_dir, record) -> None:
    """Write the adapted model as a new checkpoint that keeps the home config and records the adaptation."""
    if not math.isfinite(record["threshold"]):
        raise DataError(f"The adapted threshold is {record['threshold']}; check the labels of {record['data']}.")
    keep = {key: value for key, value in config.items()
            if key not in ("format", "backbone", "num_classes", "classes", "image_size", "input_size", "channels",
                           "mean", "std", "threshold", "weights_sha256")}
    save_checkpoint(out_dir, model, image_size=int(config["image_size"]), classes=config["classes"],
                    threshold=record["threshold"], input_size=config.get("input_size"), channels=config.get("channels"),
                    **keep, adaptation=record)


def adaptation_images(config: dict) -> set:
    """Return the resolved paths of the images a checkpoint was adapted on (empty for a checkpoint never adapted)."""
    return set((config.get("adaptation") or {}).get("images", []))
