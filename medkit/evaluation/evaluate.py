"""Validation a reviewer would accept: seeded cross-validation, bootstrap intervals, operating points.

Lesson 05 uses these. Every random choice takes a `seed`, so the same seed gives the same table.
Binary problems only where an operating point is involved (sensitivity, specificity, confusion).
"""

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import bootstrap, mannwhitneyu
from sklearn.base import clone
from sklearn.metrics import auc as area_under
from sklearn.metrics import average_precision_score, confusion_matrix, precision_recall_curve, roc_curve
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, train_test_split

from ..base.errors import DataError
from .metrics import check_probs, classification_metrics

__all__ = [
    "cv_splits",
    "CVResult",
    "cross_validate",
    "repeated_single_splits",
    "Interval",
    "bootstrap_ci",
    "group_bootstrap",
    "mann_whitney_auc",
    "metrics_with_ci",
    "metric_gaps",
    "mean_ci",
    "choose_threshold",
    "confusion",
    "roc_pr",
    "plot_confusion",
    "plot_roc_pr",
]


def _binary_labels(labels, where: str = "labels") -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise DataError(f"{where} must be one integer per sample, shaped (N,); got {labels.shape}.")
    values = set(np.unique(labels).tolist())
    if not values <= {0, 1}:
        raise DataError(f"{where} must be 0/1 for a binary operating point; got values {sorted(values)}.")
    return labels.astype(int)


def _positive_scores(labels, probs) -> tuple[np.ndarray, np.ndarray]:
    """Return (labels, P(positive)) after checking both, for binary problems."""
    labels = _binary_labels(labels)
    probs = check_probs(probs, labels)
    if probs.shape[1] != 2:
        raise DataError(f"An operating point needs a binary problem; got probabilities for {probs.shape[1]} classes.")
    return labels, probs[:, 1]


# --- cross-validation ------------------------------------------------------------------------


def cv_splits(labels, k: int = 5, groups=None, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return k seeded (train_index, test_index) folds: stratified by label, and by group when `groups` is given.

    With `groups` (patient or site ids) no group is in two folds; with k equal to the number of
    groups this is leave-one-group-out, the honest test of "does it work at a site it never saw".
    """
    labels = np.asarray(labels)
    k = int(k)
    if labels.ndim != 1 or len(labels) == 0:
        raise DataError(f"labels must be a non-empty (N,) array; got shape {labels.shape}.")
    if k < 2:
        raise DataError(f"Cross-validation needs k >= 2 folds; got k={k}.")
    classes, counts = np.unique(labels, return_counts=True)
    if len(classes) < 2:
        raise DataError(f"Cross-validation needs two classes; every label is {classes[0].item()!r}.")
    if groups is None:
        if counts.min() < k:
            small = classes[counts.argmin()].item()
            raise DataError(f"k={k} folds but class {small!r} has only {counts.min()} samples: some folds would miss "
                            f"it. Use k <= {counts.min()} or more data.")
        splitter, args = StratifiedKFold(k, shuffle=True, random_state=seed), (labels,)
    else:
        groups = np.asarray(groups)
        if len(groups) != len(labels):
            raise DataError(f"{len(groups)} group ids for {len(labels)} labels; give one group per sample.")
        n_groups = len(np.unique(groups))
        if n_groups < k:
            raise DataError(f"k={k} folds but only {n_groups} groups: a group cannot be split. Use k <= {n_groups}.")
        splitter, args = StratifiedGroupKFold(k, shuffle=True, random_state=seed), (labels, groups)
    folds = list(splitter.split(np.zeros(len(labels)), *args))
    for i, (train, test) in enumerate(folds):
        for part, index in (("train", train), ("test", test)):
            if len(np.unique(labels[index])) < 2:
                where = f" (groups {sorted(set(groups[index].tolist()))})" if groups is not None else ""
                raise DataError(f"Fold {i} {part} set{where} holds a single class, so AUC, sensitivity and specificity "
                                "are undefined there. Use fewer folds, or groups that each hold both classes.")
    return folds


@dataclass
class CVResult:
    """One row per fold (`table`), the mean and spread of each metric, and out-of-fold probabilities."""

    table: pd.DataFrame
    oof_probs: np.ndarray  # each sample's probabilities from the fold that did not train on it

    @property
    def summary(self) -> pd.DataFrame:
        """Return the mean, standard deviation, min and max of each metric across folds."""
        numeric = self.table.drop(columns=["fold", "n_train", "n_test"], errors="ignore").select_dtypes("number")
        return numeric.agg(["mean", "std", "min", "max"]).T

    def mean(self, metric: str = "auc") -> float:
        return float(self.table[metric].mean())

    def std(self, metric: str = "auc") -> float:
        return float(self.table[metric].std(ddof=1))

    def __repr__(self) -> str:
        return f"{self.table.round(3).to_string(index=False)}\n\n{self.summary.round(3).to_string()}"


def _fit_predict(model, X_train, y_train, X_test) -> np.ndarray:
    """Fit a fresh copy of `model` (estimator, or callable (X_train, y_train, X_test) -> probs) and predict."""
    if hasattr(model, "fit"):
        fitted = clone(model).fit(X_train, y_train)
        return fitted.predict_proba(X_test)
    if callable(model):
        return check_probs(model(X_train, y_train, X_test))
    raise DataError(f"model must be a scikit-learn estimator or a callable (X_train, y_train, X_test) -> probs; "
                    f"got {type(model).__name__}.")


def cross_validate(model, X, y, *, k: int = 5, groups=None, seed: int = 0, threshold: float = 0.5) -> CVResult:
    """Cross-validate `model` on features `X` and labels `y`; return the per-fold table.

    Args:
        model: a scikit-learn classifier with `predict_proba` (cloned for every fold), or a callable
            (X_train, y_train, X_test) -> probabilities.
        X, y: features (N, D) and integer labels (N,).
        k: number of folds.
        groups: optional patient or site id per sample; folds then never split a group.
        seed: fixes the folds; the same seed gives the same table.
        threshold: the operating point for sensitivity and specificity in each fold.
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise DataError(f"{len(X)} feature rows for {len(y)} labels.")
    folds = cv_splits(y, k, groups, seed)
    rows, oof = [], None
    for i, (train, test) in enumerate(folds):
        probs = check_probs(_fit_predict(model, X[train], y[train], X[test]), y[test])
        if oof is None:
            oof = np.full((len(y), probs.shape[1]), np.nan)
        oof[test] = probs
        row = {"fold": i, "n_train": len(train), "n_test": len(test)}
        if groups is not None:
            row["test_groups"] = ",".join(map(str, sorted(set(np.asarray(groups)[test].tolist()))))
        row.update({m: v for m, v in classification_metrics(y[test], probs, threshold).items() if m not in ("n", "threshold")})
        rows.append(row)
    return CVResult(pd.DataFrame(rows), oof)


def _one_split(y, groups, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return one stratified (train, test) split; with `groups`, the first fold of a StratifiedGroupKFold."""
    index = np.arange(len(y))
    if groups is None:
        return train_test_split(index, test_size=test_size, stratify=y, random_state=seed)
    folds = StratifiedGroupKFold(max(2, round(1 / test_size)), shuffle=True, random_state=seed)
    return next(folds.split(index, y, groups))


def repeated_single_splits(model, X, y, *, test_size: float = 0.2, n_repeats: int = 20, seed: int = 0,
                           metric: str = "auc", groups=None) -> np.ndarray:
    """Return `metric` on the test part of `n_repeats` random stratified splits, one per seed.

    Each value is what a paper reporting "one random split" would have published. With `groups` (patient ids)
    no patient is on both sides: each split is then one fold of a stratified group k-fold with k = 1 / test_size.
    """
    X, y = np.asarray(X), np.asarray(y)
    if metric not in ("auc", "acc", "balanced_acc", "sensitivity", "specificity"):
        raise DataError(f"Unknown metric {metric!r}; choose auc, acc, balanced_acc, sensitivity or specificity.")
    if len(X) != len(y):
        raise DataError(f"{len(X)} feature rows for {len(y)} labels.")
    if groups is not None and len(groups) != len(y):
        raise DataError(f"{len(groups)} group ids for {len(y)} labels; give one group per sample.")
    groups = None if groups is None else np.asarray(groups)
    scores = []
    for r in range(int(n_repeats)):
        try:
            train, test = _one_split(y, groups, test_size, seed + r)
        except ValueError as exc:
            raise DataError(f"Cannot split {len(y)} samples stratified with test_size={test_size}: {exc}") from exc
        probs = _fit_predict(model, X[train], y[train], X[test])
        scores.append(classification_metrics(y[test], probs)[metric])
    return np.array(scores)


# --- bootstrap confidence intervals --------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A point estimate with its bootstrap confidence interval."""

    estimate: float
    low: float
    high: float
    level: float = 0.95

    @property
    def width(self) -> float:
        return self.high - self.low

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.3f} [{self.low:.3f}, {self.high:.3f}]"


def mann_whitney_auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Return the Mann-Whitney AUC of positive vs negative scores (ties count one half)."""
    neg = np.sort(neg)
    below = np.searchsorted(neg, pos, side="left")
    not_above = np.searchsorted(neg, pos, side="right")
    return float((below + not_above).sum() / (2.0 * len(pos) * len(neg)))


_METRICS = ("auc", "sensitivity", "specificity", "acc")


def _percentile_intervals(point, reps: np.ndarray, level: float) -> list[Interval]:
    """Return one percentile Interval per column of the bootstrap replicates `reps` (n_boot, k) around `point`."""
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return [Interval(float(p), float(low), float(high), level) for p, low, high in zip(point, lo, hi)]


def _metrics_at(threshold: float):
    """Return a vectorised statistic(pos, neg, axis) -> `_METRICS` stacked first, for scipy.stats.bootstrap."""
    def statistic(pos, neg, axis=-1):
        n_pos, n_neg = pos.shape[axis], neg.shape[axis]
        auc = mannwhitneyu(pos, neg, axis=axis).statistic / (n_pos * n_neg)  # ties count one half, as in roc_auc
        hits, rejections = (pos >= threshold).sum(axis), (neg < threshold).sum(axis)
        return np.stack([auc, hits / n_pos, rejections / n_neg, (hits + rejections) / (n_pos + n_neg)])

    return statistic


def _bootstrap(labels, probs, threshold: float, n_boot: int, level: float, seed: int):
    """Return (point metrics, stratified bootstrap replicates (n_boot, 4)) in `_METRICS` order."""
    labels, scores = _positive_scores(labels, probs)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) < 2 or len(neg) < 2:
        raise DataError(f"A bootstrap interval needs at least 2 positives and 2 negatives; got {len(pos)} and {len(neg)}.")
    if not 0 < level < 1:
        raise DataError(f"level must be in (0, 1), e.g. 0.95; got {level}.")
    if int(n_boot) < 10:
        raise DataError(f"n_boot={n_boot} is too few replicates for an interval; use 1000 (200 for a quick look).")
    statistic = _metrics_at(threshold)
    # two samples, not paired: scipy resamples positives and negatives each on its own, i.e. stratified
    result = bootstrap((pos, neg), statistic, n_resamples=int(n_boot), paired=False, vectorized=True,
                       confidence_level=level, method="percentile", rng=np.random.default_rng(seed),
                       batch=200)  # 200 replicates at a time: bounded memory on a few thousand images
    return statistic(pos, neg), result.bootstrap_distribution.T


def group_bootstrap(statistic, n: int, groups=None, *, n_boot: int = 1000, seed: int = 0) -> np.ndarray:
    """Return `statistic(index)` over `n_boot` resamples of `n` items drawn with replacement (the one resampler).

    Given `groups` (a patient id per item), each draw is a whole group with all its items: the patient
    bootstrap, so images of one patient never count as independent evidence. None draws items one by one.
    """
    units = np.arange(n) if groups is None else np.asarray(groups)
    if len(units) != n:
        raise DataError(f"groups must name one group per item: got {len(units)} for {n} items.")
    ids, where = np.unique(units, return_inverse=True)
    members = np.split(np.argsort(where, kind="stable"), np.cumsum(np.bincount(where))[:-1])
    rng = np.random.default_rng(seed)
    return np.array([statistic(np.concatenate([members[g] for g in rng.integers(0, len(ids), len(ids))]))
                     for _ in range(int(n_boot))])


def metrics_with_ci(labels, probs, threshold: float = 0.5, *, n_boot: int = 1000, level: float = 0.95,
                    seed: int = 0) -> dict[str, Interval]:
    """Return AUC, sensitivity, specificity and accuracy at `threshold`, each with a stratified bootstrap interval.

    The bootstrap (scipy.stats.bootstrap, positives and negatives as two unpaired samples) resamples each class
    on its own (as pROC does by default), so every replicate keeps the case mix and both classes; the interval
    is the percentile interval.
    """
    point, reps = _bootstrap(labels, probs, threshold, n_boot, level, seed)
    return dict(zip(_METRICS, _percentile_intervals(point, reps, level)))


def metric_gaps(reference: tuple, other: tuple, threshold: float = 0.5, *, n_boot: int = 1000, level: float = 0.95,
                seed: int = 0) -> dict[str, Interval]:
    """Return other minus reference for AUC, sensitivity, specificity and accuracy, each with a bootstrap interval.

    `reference` and `other` are (labels, probs) of two independent image sets (an internal test part and an
    external site): each is resampled on its own (stratified, as in `metrics_with_ci`), and the interval is the
    percentile interval of the replicate differences. An interval that excludes 0 is a gap the sampling
    noise of either set does not explain.
    """
    point_a, reps_a = _bootstrap(*reference, threshold, n_boot, level, seed)
    point_b, reps_b = _bootstrap(*other, threshold, n_boot, level, seed + 1)  # another stream: independent sets
    return dict(zip(_METRICS, _percentile_intervals(point_b - point_a, reps_b - reps_a, level)))


def mean_ci(values, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Return the mean of per-image values (Dice, IoU... lesson 07) with a percentile bootstrap interval (NaNs dropped)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise DataError("No defined values to average (every image was undefined for this metric).")
    if len(values) < 2 or np.ptp(values) == 0:  # nothing to resample: the interval is the point
        return Interval(float(values.mean()), float(values.mean()), float(values.mean()), level)
    result = bootstrap((values,), np.mean, n_resamples=int(n_boot), vectorized=True, confidence_level=level,
                       method="percentile", rng=np.random.default_rng(seed))
    ci = result.confidence_interval
    return Interval(float(values.mean()), float(ci.low), float(ci.high), level)


def bootstrap_ci(labels, probs, metric: str = "auc", threshold: float = 0.5, *, n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0) -> Interval:
    """Return one metric ("auc", "sensitivity", "specificity" or "acc") with its stratified bootstrap interval."""
    if metric not in _METRICS:
        raise DataError(f"Unknown metric {metric!r}; choose one of {', '.join(_METRICS)}.")
    return metrics_with_ci(labels, probs, threshold, n_boot=n_boot, level=level, seed=seed)[metric]


# --- operating points ------------------------------------------------------------------------


def choose_threshold(val_labels, val_probs, rule: str = "youden", target: float | None = None) -> float:
    """Return a decision threshold chosen on VALIDATION data (never on the test set you report).

    Args:
        val_labels, val_probs: validation labels and probabilities.
        rule: "youden" (maximise sensitivity + specificity - 1; `medkit fit` uses it), "0.5" (a fixed cut),
            "sensitivity" (the highest threshold whose
            sensitivity reaches `target`: screening, miss few cases) or "specificity" (the lowest threshold whose
            specificity reaches `target`: confirmation, few false alarms).
        target: the sensitivity or specificity to reach, e.g. 0.95.
    """
    if rule in ("0.5", 0.5):
        return 0.5
    labels, scores = _positive_scores(val_labels, val_probs)
    if len(np.unique(labels)) < 2:
        raise DataError("Choosing a threshold needs both classes in the validation data; it has only one.")
    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    # sklearn puts +inf first ("predict nothing positive"); just above 1 means the same and stays finite
    thresholds = np.minimum(thresholds, np.nextafter(1.0, 2.0))
    if rule == "youden":
        return float(thresholds[np.argmax(tpr - fpr)])
    if rule not in ("sensitivity", "specificity"):
        raise DataError(f"Unknown rule {rule!r}; choose youden, 0.5, sensitivity or specificity.")
    if target is None or not 0 < target <= 1:
        raise DataError(f"rule={rule!r} needs a target in (0, 1], e.g. target=0.95; got {target}.")
    if rule == "sensitivity":  # thresholds decrease along the curve, so the first hit is the highest threshold
        return float(thresholds[np.argmax(tpr >= target)])
    ok = np.flatnonzero(1 - fpr >= target)
    return float(thresholds[ok[-1]])


def confusion(labels, probs, threshold: float = 0.5, normalize: str | None = None) -> np.ndarray:
    """Return the 2x2 confusion matrix [[TN, FP], [FN, TP]] at `threshold`.

    `normalize`: None (counts), "true" (rows sum to 1: specificity and sensitivity on the diagonal),
    "pred" (columns sum to 1: NPV and PPV) or "all".
    """
    labels, scores = _positive_scores(labels, probs)
    if normalize not in (None, "true", "pred", "all"):
        raise DataError(f"normalize must be None, 'true', 'pred' or 'all'; got {normalize!r}.")
    return confusion_matrix(labels, (scores >= threshold).astype(int), labels=[0, 1], normalize=normalize)


def roc_pr(labels, probs) -> dict:
    """Return the ROC and precision-recall curves and their areas (binary)."""
    labels, scores = _positive_scores(labels, probs)
    if len(np.unique(labels)) < 2:
        raise DataError("ROC and PR curves need both classes among the labels; this set has only one.")
    fpr, tpr, roc_thr = roc_curve(labels, scores)
    precision, recall, pr_thr = precision_recall_curve(labels, scores)
    return {"fpr": fpr, "tpr": tpr, "roc_thresholds": roc_thr, "auc": float(area_under(fpr, tpr)),
            "precision": precision, "recall": recall, "pr_thresholds": pr_thr,
            "average_precision": float(average_precision_score(labels, scores)), "prevalence": float(labels.mean())}


def plot_confusion(labels, probs, threshold: float = 0.5, classes=("normal", "pneumonia"), ax=None, title: str = ""):
    """Draw the confusion matrix: counts, and the share of each true class in brackets."""
    import matplotlib.pyplot as plt

    counts = confusion(labels, probs, threshold)
    rates = confusion(labels, probs, threshold, normalize="true")
    ax = ax or plt.subplots(figsize=(3.4, 3))[1]
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for i in range(2):
        for j in range(2):
            ax.text(j, i, f"{counts[i, j]}\n({rates[i, j]:.0%})", ha="center", va="center",
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set_xticks([0, 1], [f"pred {c}" for c in classes])
    ax.set_yticks([0, 1], [f"true {c}" for c in classes])
    ax.set_title(title or f"threshold {threshold:.2f}")
    return ax


def plot_roc_pr(labels, probs, *, label: str = "", axes=None, n_boot: int = 1000, seed: int = 0):
    """Draw ROC and precision-recall curves; the legend gives AUC with its bootstrap 95% interval."""
    import matplotlib.pyplot as plt

    curves = roc_pr(labels, probs)
    ci = bootstrap_ci(labels, probs, "auc", n_boot=n_boot, seed=seed)
    if axes is None:
        axes = plt.subplots(1, 2, figsize=(9, 4))[1]
    axes[0].plot(curves["fpr"], curves["tpr"], label=f"{label} AUC {ci}".strip())
    axes[0].plot([0, 1], [0, 1], ":", color="grey")
    axes[0].set(xlabel="1 - specificity (FPR)", ylabel="sensitivity (TPR)", title="ROC")
    axes[1].plot(curves["recall"], curves["precision"], label=f"{label} AP {curves['average_precision']:.3f}".strip())
    axes[1].axhline(curves["prevalence"], ls=":", color="grey")
    axes[1].set(xlabel="recall (sensitivity)", ylabel="precision (PPV)", title="Precision-recall")
    for ax in axes:
        ax.legend(loc="lower right" if ax is axes[0] else "lower left", fontsize=8)
    return axes
