"""Subgroup metrics and equalized odds: does the model work as well for every site or group?

Lesson 05 uses these, on top of fairlearn's `MetricFrame` and `equalized_odds_difference`. A group
is a site, a scanner, a sex or an age band; each must hold both classes, or its sensitivity or
specificity is undefined.
"""

import numpy as np
import pandas as pd
from fairlearn import metrics as fl
from fairlearn.metrics import MetricFrame, count, true_negative_rate, true_positive_rate
from sklearn.metrics import roc_auc_score

from ..errors import DataError
from .evaluate import metrics_with_ci
from .metrics import check_probs

__all__ = ["group_metrics", "subgroup_results", "equalized_odds", "equalized_odds_difference"]


def _checked(labels, probs, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (labels, P(positive), groups) after checking shapes, values and that each group has both classes."""
    labels = np.asarray(labels)
    probs = check_probs(probs, labels)
    if probs.shape[1] != 2:
        raise DataError(f"Subgroup sensitivity and specificity need a binary problem; got {probs.shape[1]} classes.")
    if labels.ndim != 1 or not set(np.unique(labels).tolist()) <= {0, 1}:
        raise DataError(f"labels must be 0/1 shaped (N,); got shape {labels.shape}, values {np.unique(labels)[:5].tolist()}.")
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != len(labels):
        raise DataError(f"Give one group per sample: {len(labels)} labels but groups shaped {groups.shape}.")
    for g in np.unique(groups).tolist():
        present = np.unique(labels[groups == g])
        if len(present) < 2:
            only = "positives" if present[0] == 1 else "negatives"
            raise DataError(f"Group {g!r} holds only {only} ({(groups == g).sum()} samples), so its sensitivity or "
                            "specificity is undefined. Merge it with another group or collect both classes.")
    return labels.astype(int), probs[:, 1], groups


def group_metrics(labels, probs, groups, threshold: float = 0.5) -> pd.DataFrame:
    """Return one row per group (plus "overall"): n, prevalence, sensitivity, specificity, AUC at `threshold`."""
    labels, scores, groups = _checked(labels, probs, groups)
    pred = (scores >= threshold).astype(int)
    frame = MetricFrame(metrics={"n": count, "sensitivity": true_positive_rate, "specificity": true_negative_rate,
                                 "prevalence": lambda y, _: float(np.mean(y))},
                        y_true=labels, y_pred=pred, sensitive_features=pd.Series(groups, name="group"))
    # AUC needs the scores rather than the decisions, so it is a second MetricFrame on the same groups
    aucs = MetricFrame(metrics={"auc": roc_auc_score}, y_true=labels, y_pred=scores,
                       sensitive_features=pd.Series(groups, name="group"))
    table = pd.concat([frame.by_group, aucs.by_group], axis=1)
    overall = pd.DataFrame([{**frame.overall.to_dict(), **aucs.overall.to_dict()}], index=pd.Index(["overall"], name="group"))
    table = pd.concat([table, overall])
    table["n"] = table["n"].astype(int)
    return table[["n", "prevalence", "sensitivity", "specificity", "auc"]]


def subgroup_results(labels, probs, groups, threshold: float = 0.5, *, n_boot: int = 1000, seed: int = 0) -> list:
    """Return one row per subgroup: its name, size, prevalence and metrics with stratified bootstrap intervals.

    The model card's subgroup table (lesson 06). Unlike `group_metrics`, a subgroup too small for an
    interval is kept, with a note saying why, rather than refused.
    """
    labels, probs, groups = np.asarray(labels), np.asarray(probs), np.asarray(groups)
    if not len(labels) == len(probs) == len(groups):
        raise DataError(f"{len(labels)} labels, {len(probs)} probability rows and {len(groups)} group ids: "
                        "give one of each per image.")
    rows = []
    for group in sorted(set(groups.tolist()), key=str):
        mask = groups == group
        row = {"group": str(group), "n": int(mask.sum()), "prevalence": float(labels[mask].mean())}
        try:
            row.update(metrics_with_ci(labels[mask], probs[mask], threshold, n_boot=n_boot, seed=seed))
        except DataError as exc:  # too few cases of one class: report it rather than hide the subgroup
            row["note"] = str(exc)
        rows.append(row)
    return rows


def equalized_odds(labels, probs, groups, threshold: float = 0.5) -> dict:
    """Return the largest between-group gaps in sensitivity (TPR) and in false-positive rate, and their max.

    Equalized odds (Hardt et al. 2016) asks both to be equal across groups; the difference is 0 when
    they are and 1 at worst.
    """
    labels, scores, groups = _checked(labels, probs, groups)
    pred = (scores >= threshold).astype(int)
    frame = MetricFrame(metrics={"tpr": true_positive_rate, "tnr": true_negative_rate}, y_true=labels, y_pred=pred,
                        sensitive_features=groups)
    gaps = frame.difference(method="between_groups")
    eod = float(fl.equalized_odds_difference(labels, pred, sensitive_features=groups))
    return {"tpr_difference": float(gaps["tpr"]), "fpr_difference": float(gaps["tnr"]), "equalized_odds_difference": eod}


def equalized_odds_difference(labels, probs, groups, threshold: float = 0.5) -> float:
    """Return fairlearn's equalized-odds difference of the decisions at `threshold` across `groups`."""
    return equalized_odds(labels, probs, groups, threshold)["equalized_odds_difference"]
