"""Subgroup metrics and equalized odds: does the model work as well for every site or group?

Lesson 05 uses these, on top of fairlearn's `MetricFrame` and `equalized_odds_difference`. A group
is a site, a scanner, a sex or an age band; each must hold both classes, or its sensitivity or
specificity is undefined. `group_metrics` is the one per-group table; `subgroup_results` lists its rows with
bootstrap intervals for the model card (lesson 06).
"""

import numpy as np
import pandas as pd
from fairlearn import metrics as fl
from fairlearn.metrics import MetricFrame, count, true_negative_rate, true_positive_rate
from sklearn.metrics import roc_auc_score

from ..base.errors import DataError
from .evaluate import metrics_with_ci
from .metrics import check_probs

__all__ = ["group_metrics", "subgroup_results", "equalized_odds", "equalized_odds_difference"]


def _checked(labels, probs, groups, both_classes: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (labels, P(positive), groups) after checking shapes, values and (unless told not to) that each group
    has both classes."""
    labels = np.asarray(labels)
    probs = check_probs(probs, labels)
    if probs.shape[1] != 2:
        raise DataError(f"Subgroup sensitivity and specificity need a binary problem; got {probs.shape[1]} classes.")
    if labels.ndim != 1 or not set(np.unique(labels).tolist()) <= {0, 1}:
        raise DataError(f"labels must be 0/1 shaped (N,); got shape {labels.shape}, values {np.unique(labels)[:5].tolist()}.")
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != len(labels):
        raise DataError(f"Give one group per sample: {len(labels)} labels but groups shaped {groups.shape}.")
    for g in np.unique(groups).tolist() if both_classes else ():
        present = np.unique(labels[groups == g])
        if len(present) < 2:
            only = "positives" if present[0] == 1 else "negatives"
            raise DataError(f"Group {g!r} holds only {only} ({(groups == g).sum()} samples), so its sensitivity or "
                            "specificity is undefined. Merge it with another group or collect both classes.")
    return labels.astype(int), probs[:, 1], groups


def _both_classes(metric):
    """Return `metric`, NaN on a group holding one class (only `n_boot` tables keep such groups)."""
    return lambda y, s: metric(y, s) if 0 < np.sum(y) < len(y) else np.nan


def _intervals(labels, scores, threshold, n_boot, seed) -> dict:
    """Return {metric: Interval, ...} for `metrics_with_ci`'s metrics, or {"note": why there is none}."""
    try:
        return {f"{k}_ci": v for k, v in metrics_with_ci(labels, scores, threshold, n_boot=n_boot, seed=seed).items()}
    except DataError as exc:  # too few cases of one class: report it rather than hide the group
        return {"note": str(exc)}


def group_metrics(labels, probs, groups, threshold: float = 0.5, *, n_boot: int = 0, seed: int = 0) -> pd.DataFrame:
    """Return one row per group (plus "overall"): n, prevalence, sensitivity, specificity, AUC at `threshold`.

    Without `n_boot` a group holding one class only is refused (its sensitivity or specificity is undefined).
    With `n_boot` > 0 every row also gets stratified bootstrap 95% intervals (columns `auc_ci`, `sensitivity_ci`,
    `specificity_ci`, `acc_ci`: `Interval`s), and a group too small for one is kept, with a `note` saying why.
    """
    labels, scores, groups = _checked(labels, probs, groups, both_classes=not n_boot)
    pred = (scores >= threshold).astype(int)
    rates = {"sensitivity": true_positive_rate, "specificity": true_negative_rate}
    frame = MetricFrame(metrics={"n": count, **{k: _both_classes(v) for k, v in rates.items()},
                                 "prevalence": lambda y, _: float(np.mean(y))},
                        y_true=labels, y_pred=pred, sensitive_features=pd.Series(groups, name="group"))
    # AUC needs the scores rather than the decisions, so it is a second MetricFrame on the same groups
    aucs = MetricFrame(metrics={"auc": _both_classes(roc_auc_score)}, y_true=labels, y_pred=scores,
                       sensitive_features=pd.Series(groups, name="group"))
    table = pd.concat([frame.by_group, aucs.by_group], axis=1)
    overall = pd.DataFrame([{**frame.overall.to_dict(), **aucs.overall.to_dict()}], index=pd.Index(["overall"], name="group"))
    table = pd.concat([table, overall])
    table["n"] = table["n"].astype(int)
    table = table[["n", "prevalence", "sensitivity", "specificity", "auc"]]
    if not n_boot:
        return table
    cis = [_intervals(labels[mask], scores[mask], threshold, n_boot, seed)
           for mask in [groups == g for g in table.index[:-1]] + [slice(None)]]
    return table.join(pd.DataFrame(cis, index=table.index))


def subgroup_results(labels, probs, groups, threshold: float = 0.5, *, n_boot: int = 1000, seed: int = 0) -> list:
    """Return `group_metrics` with intervals as the model card's subgroup rows (lesson 06), groups in name order.

    Each row: the group's name, size, prevalence and `metrics_with_ci`'s `Interval`s; a subgroup too small for an
    interval keeps its name, size and prevalence, with a `note` saying why.
    """
    labels, probs, groups = np.asarray(labels), np.asarray(probs), np.asarray(groups)
    if not len(labels) == len(probs) == len(groups):
        raise DataError(f"{len(labels)} labels, {len(probs)} probability rows and {len(groups)} group ids: "
                        "give one of each per image.")
    table = group_metrics(labels, probs, groups, threshold, n_boot=n_boot, seed=seed).drop(index="overall")
    rows = []
    for group, r in sorted(table.iterrows(), key=lambda item: str(item[0])):
        row = {"group": str(group), "n": int(r["n"]), "prevalence": float(r["prevalence"])}
        if isinstance(r.get("note"), str):
            row["note"] = r["note"]
        else:
            row.update({c[:-3]: r[c] for c in table.columns if c.endswith("_ci")})
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
