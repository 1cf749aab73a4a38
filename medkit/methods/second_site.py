"""A second hospital (lesson 12): train at home, score at a site collected apart, see why it misses, try levers.

The home model is `medkit fit`'s recipe ("top": the head for one epoch, then the top layer group too) on cached
outputs of the frozen ImageNet lower groups. Those outputs do not depend on the seed, so `cache_sites` computes
them once per image transform and every seed's model trains on the same cache. The threshold is chosen on the home
val part (Youden) and carried unchanged to the second site: that is what a deployed model does.

Levers measured in the lesson, none of which uses a label from the second site: a seed ensemble (average the seeds'
probabilities), BatchNorm re-estimation of the trained part on the site's unlabelled images (AdaBN: Li et al.,
"Revisiting Batch Normalization For Practical Domain Adaptation", 2016, arXiv:1603.04779), and histogram
equalisation of every image at both sites (`equalize`).
"""

import copy
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..base.errors import DataError
from ..core.features import TensorLoader, cache_activations, linear_probe, split_at_group
from ..core.freeze import fit_stages, schedule
from ..core.train import predict, reestimate_batchnorm, seed_everything
from ..data import BatchLoader, ImageDataset
from ..evaluation.evaluate import choose_threshold, cross_validate, metrics_with_ci
from ..evaluation.metrics import auc, classification_metrics
from ..models import get_backbone, get_spec

__all__ = ["HOME_PARTS", "SiteCache", "HomeModel", "cache_sites", "train_home", "ensemble", "adapt_batchnorm",
           "equalize", "site_metrics", "gap_table", "best_threshold_in_hindsight", "mean_images", "intensity_summary",
           "site_probe", "lever_row", "lever_verdicts", "site_probs"]

HOME_PARTS = ("train", "val", "test")  # the bundled internal X-rays, split by patient (data.chest_xrays)


def equalize(images: np.ndarray) -> np.ndarray:
    """Return uint8 images (N, H, W) each histogram-equalised on its own (scikit-image's `equalize_hist`)."""
    from skimage.exposure import equalize_hist

    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"equalize expects grey uint8 images (N, H, W); got {images.dtype} {images.shape}.")
    return np.stack([(equalize_hist(x, nbins=256) * 255).round().astype(np.uint8) for x in images])


def _transformed(ds: ImageDataset, transform) -> ImageDataset:
    if transform is None:
        return ds
    out = copy.copy(ds)
    out.images = transform(ds.images)
    return out


@dataclass
class SiteCache:
    """Outputs of the frozen lower groups for every part (home train/val/test, the second site), computed once."""

    acts: dict  # part -> float16 activations (N, C, H, W)
    labels: dict  # part -> labels (N,)
    cut: int  # layer groups below the cut are frozen and cached
    backbone: str
    image_size: int
    transform_name: str = "none"
    seconds: float = 0.0


def cache_sites(parts: dict, *, image_size: int, backbone: str = "efficientnet_lite0", transform=None,
                transform_name: str = "none", epochs: int = 6, batch_size: int = 16) -> SiteCache:
    """Return the frozen lower groups' outputs for each ImageDataset in `parts` ({"train", "val", "test", "site"}).

    `transform` (e.g. `equalize`) is applied to the uint8 images of every part, home and site alike. The cut is
    where `medkit fit`'s "top" schedule stops training, so the cache serves every seed of `train_home`.
    Images go through in batches of `batch_size`: at 128 px a batch of 32 raised a workshop kernel's peak by
    ~250 MB, of 16 by about half that (Binder's 1 GB, benchmarks/bench_notebooks.py).
    """
    missing = [p for p in (*HOME_PARTS, "site") if p not in parts]
    if missing:
        raise DataError(f"cache_sites needs the parts train, val, test and site; {missing} missing.")
    start = time.perf_counter()
    model = get_backbone(backbone, num_classes=2)
    n_groups = len(get_spec(model).groups)
    cut = min(st.freeze_to % n_groups for st in schedule("top", epochs, 1e-3, n_groups=n_groups))
    lower, _ = split_at_group(model, cut)
    pre = get_spec(model).preprocess(image_size)
    acts, labels = {}, {}
    for name, ds in parts.items():
        ds = _transformed(ds, transform)
        acts[name] = cache_activations(lower, BatchLoader(ds, batch_size, preprocess=pre))
        labels[name] = np.asarray(ds.labels)
    return SiteCache(acts, labels, cut, backbone, image_size, transform_name, time.perf_counter() - start)


@dataclass
class HomeModel:
    """One trained home model: the upper (trained) part, its home-val threshold, and P(pneumonia) per part."""

    upper: nn.Module
    threshold: float
    probs: dict  # part -> P(positive) (N,)
    seed: int
    seconds: float
    history: list = field(default_factory=list)

    def embed(self, acts: torch.Tensor) -> np.ndarray:
        """Return the pooled features (before the classifier) of cached activations."""
        body = self.upper[:-1].eval()
        with torch.inference_mode():
            return torch.cat([body(acts[i:i + 256].float()).flatten(1) for i in range(0, len(acts), 256)]).numpy()


def _probs(upper: nn.Module, acts: torch.Tensor, labels) -> np.ndarray:
    return predict(upper, TensorLoader(acts, labels, 256))[0][:, 1]


def site_probs(upper: nn.Module, cache: SiteCache, part: str = "site") -> np.ndarray:
    """Return P(positive) of a trained part (e.g. from `adapt_batchnorm`) on one cached part."""
    if part not in cache.acts:
        raise DataError(f"No cached part {part!r}; the cache holds {sorted(cache.acts)}.")
    return _probs(upper, cache.acts[part], cache.labels[part])


def train_home(cache: SiteCache, *, seed: int = 0, epochs: int = 6, lr: float = 2e-3,
               batch_size: int = 64) -> HomeModel:
    """Train `medkit fit`'s "top" recipe on the cached home train part; threshold by Youden on home val.

    Only the upper part exists here: the lower groups are the cache's (frozen, ImageNet), so any seed reuses it.
    """
    seed_everything(seed)
    start = time.perf_counter()
    model = get_backbone(cache.backbone, num_classes=2)
    _, upper = split_at_group(model, cache.cut)
    n_groups = len(get_spec(model).groups)
    train_dl = TensorLoader(cache.acts["train"], cache.labels["train"], batch_size, shuffle=True, seed=seed,
                            drop_last=len(cache.labels["train"]) > batch_size)
    history = fit_stages(model, train_dl, None, schedule("top", epochs, lr, n_groups=n_groups), net=upper,
                         progress=False)
    probs = {part: _probs(upper, acts, cache.labels[part]) for part, acts in cache.acts.items()}
    threshold = choose_threshold(cache.labels["val"], probs["val"])
    return HomeModel(upper.eval(), threshold, probs, seed, time.perf_counter() - start, history.rows)


def ensemble(models: list, labels_val) -> HomeModel:
    """Return the seed ensemble: the mean P(pneumonia) of `models` per part, its threshold chosen on home val again."""
    if not models:
        raise DataError("ensemble needs at least one trained HomeModel.")
    probs = {part: np.mean([m.probs[part] for m in models], axis=0) for part in models[0].probs}
    return HomeModel(models[0].upper, choose_threshold(labels_val, probs["val"]), probs, -1,
                     sum(m.seconds for m in models))


@torch.no_grad()
def adapt_batchnorm(model: HomeModel, acts: torch.Tensor, batch_size: int = 64) -> nn.Module:
    """Return a copy of the model's trained part whose BatchNorm statistics are re-estimated on `acts` (no labels).

    Running means and variances become the plain average over the new site's batches (momentum None); weights and
    the home threshold are kept. The frozen lower groups keep ImageNet's statistics (they are cached).
    """
    upper = copy.deepcopy(model.upper)
    order = torch.randperm(len(acts), generator=torch.Generator().manual_seed(model.seed))
    try:
        return reestimate_batchnorm(upper, (acts[order[i:i + batch_size]] for i in range(0, len(acts), batch_size)))
    except DataError:
        raise DataError("adapt_batchnorm: the trained part has no BatchNorm layer to re-estimate.") from None


def site_metrics(labels, probs, threshold: float, *, n_boot: int = 1000, seed: int = 0) -> dict:
    """Return AUC, accuracy, sensitivity and specificity at `threshold`, each an Interval (stratified bootstrap)."""
    return metrics_with_ci(labels, probs, threshold, n_boot=n_boot, seed=seed)


def gap_table(results: dict) -> pd.DataFrame:
    """Return a table, one row per set (e.g. "home test", "second site"), of `site_metrics` results as 'x [lo, hi]'."""
    return pd.DataFrame({name: {k: str(v) for k, v in r.items()} for name, r in results.items()}).T[
        ["auc", "acc", "sensitivity", "specificity"]]


def best_threshold_in_hindsight(labels, probs) -> dict:
    """Return the threshold that maximises accuracy ON THESE LABELS and that accuracy: an upper bound, not a method.

    It reads the very labels it is scored on; no deployed model can do this. Lesson 12 uses it to show how much of
    the drop is the operating point rather than the ranking.
    """
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    cuts = np.unique(np.concatenate([probs, [np.nextafter(probs.max(), 2.0)]]))
    acc = np.array([((probs >= c) == labels).mean() for c in cuts])
    best = int(np.argmax(acc))
    return {"threshold": float(cuts[best]), "acc": float(acc[best])}


def mean_images(datasets: dict) -> dict:
    """Return {name: {class name: mean image (H, W) in [0, 1]}} for uint8 grey ImageDatasets."""
    return {name: {cls: ds.images[ds.labels == i].mean(0) / 255.0 for i, cls in enumerate(ds.classes)
                   if (ds.labels == i).any()} for name, ds in datasets.items()}


def intensity_summary(datasets: dict, border: int = 8) -> pd.DataFrame:
    """Return per dataset: mean, sd, 1st / 50th / 99th percentile of the grey values, and the mean of a border strip."""
    rows = {}
    for name, ds in datasets.items():
        x = ds.images.astype(np.float32)
        edge = np.concatenate([x[:, :border].ravel(), x[:, -border:].ravel(), x[:, :, :border].ravel(),
                               x[:, :, -border:].ravel()])
        p1, p50, p99 = np.percentile(x, [1, 50, 99])
        rows[name] = {"mean": x.mean(), "sd": x.std(), "p1": p1, "median": p50, "p99": p99, "border_mean": edge.mean()}
    return pd.DataFrame(rows).T


def site_probe(X_home, X_site, groups_home, groups_site, *, k: int = 5, seed: int = 0, C: float = 0.05) -> float:
    """Return the patient-grouped cross-validated AUC of a logistic probe telling home (0) from site (1) embeddings.

    0.5: the embeddings cannot tell the sites apart; 1.0: every image gives its site away. Patient keys are
    prefixed with the site, because the two sites number their patients independently.
    """
    X = np.concatenate([X_home, X_site])
    y = np.r_[np.zeros(len(X_home), int), np.ones(len(X_site), int)]
    groups = np.r_[[f"home:{g}" for g in groups_home], [f"site:{g}" for g in groups_site]]

    def probe(X_fit, y_fit, X_new):
        return linear_probe(X_fit, y_fit, C=C).predict_proba(X_new)

    return float(cross_validate(probe, X, y, k=k, groups=groups, seed=seed).mean("auc"))


def lever_row(name: str, labels: dict, models: list, site_probs: list | None = None) -> dict:
    """Return one lever's row: home test AUC and second-site AUC / acc / sensitivity / specificity, mean over models.

    `labels` is the cache's {part: labels}; `site_probs` replaces each model's second-site probabilities (e.g. after
    `adapt_batchnorm`). The threshold is always the model's own home-val one: no site label is used.
    """
    site_probs = site_probs if site_probs is not None else [m.probs["site"] for m in models]
    if len(site_probs) != len(models):
        raise DataError(f"lever_row: {len(site_probs)} sets of site probabilities for {len(models)} models.")
    per = []
    for m, p in zip(models, site_probs):
        at = classification_metrics(labels["site"], p, m.threshold)
        per.append({"internal_auc": auc(labels["test"], m.probs["test"]),
                    "internal_acc": classification_metrics(labels["test"], m.probs["test"], m.threshold)["acc"],
                    "external_auc": at["auc"],
                    "external_acc": at["acc"], "external_sens": at["sensitivity"], "external_spec": at["specificity"]})
    table = pd.DataFrame(per)
    return {"lever": name, "seeds": len(models), **table.mean().to_dict(),
            **{f"{k}_sd": v for k, v in table.std(ddof=0).to_dict().items()}}


def lever_verdicts(levers: pd.DataFrame, baseline: str = "home model", noise_floor: float = 0.005) -> dict:
    """Return {lever: one sentence} comparing each lever's second-site accuracy and specificity with `baseline`'s.

    A change counts only beyond twice the baseline's seed-to-seed sd of that metric (at least `noise_floor`):
    "narrows the gap" when accuracy rises past it, "widens the gap" when it falls past it, else "no clear change".
    `levers` is indexed by lever name with `lever_row`'s columns.
    """
    if baseline not in levers.index:
        raise DataError(f"lever_verdicts: no baseline row {baseline!r}; rows are {list(levers.index)}.")
    base = levers.loc[baseline]
    margin = max(2 * float(base["external_acc_sd"]), noise_floor)
    out = {}
    for name, row in levers.drop(index=baseline).iterrows():
        delta = float(row["external_acc"] - base["external_acc"])
        word = "narrows the gap" if delta > margin else "widens the gap" if delta < -margin else "no clear change"
        out[name] = (f"{word}: site accuracy {row['external_acc']:.3f} against {base['external_acc']:.3f} "
                     f"({delta:+.3f}; noise margin {margin:.3f}), specificity {row['external_spec']:.3f} against "
                     f"{base['external_spec']:.3f}, home test AUC {row['internal_auc']:.3f}")
    return out
