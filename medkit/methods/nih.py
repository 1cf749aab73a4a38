"""Multi-label findings: patient-grouped splits, one-vs-rest probes, per-finding AUC with intervals, bias metrics.

Lesson 05's section on the NIH ChestX-ray14 subset and `medkit fit` / `evaluate` on `|`-separated findings use
these. A finding is scored only where the scored part holds enough positives and negatives; the others are
listed as skipped, with the reason, never silently dropped. Bootstrap intervals on bias metrics resample
**patients**, not images: follow-up images of one patient are not independent evidence.
"""

import numpy as np
import pandas as pd

from ..base.errors import DataError
from ..evaluation.evaluate import Interval, bootstrap_ci, group_bootstrap, mann_whitney_auc

__all__ = ["MIN_POSITIVES", "patient_split", "OneVsRestProbe", "finding_aucs", "macro_auc_ci", "age_bands",
           "subgroup_metrics", "equalized_odds_ci", "load_nih", "patients_on_both_sides"]

MIN_POSITIVES = 10  # fewer positives than this in the scored part: the AUC's interval spans most of [0.5, 1]


def patient_split(patients, Y, val_size: float = 0.15, test_size: float = 0.25, seed: int = 0) -> dict:
    """Return {"train", "val", "test"} index arrays with no patient in two parts, stratified on "any finding"."""
    from ..data.splits import check_no_leakage, train_val_test_split

    patients, Y = np.asarray(patients), np.asarray(Y)
    if len(patients) != len(Y):
        raise DataError(f"{len(patients)} patient ids for {len(Y)} label rows; give one per image.")
    parts = train_val_test_split(Y.any(1).astype(int), val_size, test_size, seed, groups=patients)
    check_no_leakage(**{k: patients[v] for k, v in parts.items()})
    return parts


class OneVsRestProbe:
    """One logistic-regression probe per finding on frozen features (`features.linear_probe`).

    A finding with no positive (or no negative) training image gets no probe; its column predicts NaN.
    """

    # C=0.001: on the NIH subset (1280 features, ~600 training images) it gave the best macro AUC of 0.001-0.1
    # over 4 patient splits (benchmarks/nih_section_margins.py), and the fastest fits
    def __init__(self, C: float = 0.001):
        self.C = C
        self.probes: list = []

    def fit(self, X, Y) -> "OneVsRestProbe":
        from ..core.features import linear_probe

        Y = np.asarray(Y)
        self.probes = [linear_probe(X, Y[:, k], C=self.C) if 0 < Y[:, k].sum() < len(Y) else None
                       for k in range(Y.shape[1])]
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Return P(finding) per image and finding, (N, K); NaN for findings without a probe."""
        return np.column_stack([p.predict_proba(X)[:, 1] if p is not None else np.full(len(X), np.nan)
                                for p in self.probes])


def finding_aucs(Y, P, names, *, min_positives: int = MIN_POSITIVES, n_boot: int = 1000, seed: int = 0) -> dict:
    """Return per-finding AUC with stratified bootstrap 95% intervals, the macro AUC, and the findings skipped.

    A finding is scored when the part holds at least `min_positives` positives and as many negatives (and
    a prediction); the others go to `skipped` with the reason. Its interval needs 2 of each (NaN below that,
    where `min_positives` < 2). Macro AUC is the mean over scored findings.

    Returns:
        {"table": DataFrame (finding, positives, auc, low, high, width), "macro_auc": float,
         "scored": [names], "skipped": {name: reason}}
    """
    from ..evaluation.metrics import auc

    Y, P = np.asarray(Y), np.asarray(P, dtype=float)
    if Y.shape != P.shape or Y.ndim != 2 or Y.shape[1] != len(names):
        raise DataError(f"Labels {Y.shape}, predictions {P.shape} and {len(names)} finding names must agree "
                        "(N images x K findings).")
    rows, skipped = [], {}
    for k, name in enumerate(names):
        pos = int(Y[:, k].sum())
        neg = len(Y) - pos
        if np.isnan(P[:, k]).any():
            skipped[name] = "no prediction (no positive or no negative training image)"
        elif min(pos, neg) < min_positives:
            why = "in this part: AUC undefined" if min_positives == 1 else f"here; an AUC needs {min_positives} of each"
            skipped[name] = f"{pos} positive(s) and {neg} negative(s) {why}"
        else:
            low = high = np.nan
            if min(pos, neg) >= 2:
                ci = bootstrap_ci(Y[:, k], P[:, k], "auc", n_boot=n_boot, seed=seed)
                low, high = ci.low, ci.high
            rows.append({"finding": name, "positives": pos, "auc": auc(Y[:, k], P[:, k]), "low": low, "high": high,
                         "width": high - low})
    table = pd.DataFrame(rows, columns=["finding", "positives", "auc", "low", "high", "width"])
    return {"table": table, "macro_auc": float(table["auc"].mean()) if len(table) else float("nan"),
            "scored": table["finding"].tolist(), "skipped": skipped}


def macro_auc_ci(Y, P, patients=None, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Return the macro AUC over the findings (columns) of `P` with a bootstrap percentile interval.

    Each replicate draws images with replacement, or, given `patients`, whole patients (all their images);
    a finding with no positive or no negative in a replicate is left out of that replicate's mean.
    """
    Y, P = np.asarray(Y), np.asarray(P, dtype=float)

    def macro(index):
        aucs = [mann_whitney_auc(P[index, k][Y[index, k] == 1], P[index, k][Y[index, k] == 0])
                for k in range(Y.shape[1]) if 0 < Y[index, k].sum() < len(index)]
        return float(np.mean(aucs)) if aucs else np.nan

    reps = group_bootstrap(macro, len(Y), patients, n_boot=n_boot, seed=seed)
    low, high = np.nanquantile(reps, [(1 - level) / 2, (1 + level) / 2])
    return Interval(macro(np.arange(len(Y))), float(low), float(high), level)


def age_bands(age, edges=(60,)) -> np.ndarray:
    """Return an age band per image: "<60" and "60+" by default; edges (50, 65) give "<50", "50-64", "65+".

    Two bands at the median by default: with a few hundred test images a third band holds too few positives
    of any one finding for its sensitivity to mean anything.
    """
    age = np.asarray(age, dtype=float)
    if np.isnan(age).any():
        raise DataError("Some ages are missing (NaN); drop or impute them before banding.")
    names = [f"<{edges[0]}"] + [f"{a}-{b - 1}" for a, b in zip(edges[:-1], edges[1:])] + [f"{edges[-1]}+"]
    return np.asarray(names, dtype=object)[np.searchsorted(np.asarray(edges), age, side="right")].astype(str)


def subgroup_metrics(y, p, groups, threshold: float) -> pd.DataFrame:
    """Return fairlearn MetricFrame rows per group (n, prevalence, sensitivity, specificity, AUC) for one finding."""
    from ..evaluation.fairness import group_metrics

    y, p = np.asarray(y), np.asarray(p, dtype=float)
    return group_metrics(y, np.column_stack([1 - p, p]), groups, threshold=threshold)


def equalized_odds_ci(y, p, groups, patients, threshold: float, *, n_boot: int = 1000, level: float = 0.95,
                      seed: int = 0) -> dict:
    """Return fairlearn's equalized-odds difference for one finding with a patient-level bootstrap interval.

    Replicates in which some group lacks positives or negatives (its rates are undefined) are dropped and
    counted in `n_dropped`.
    """
    from fairlearn.metrics import equalized_odds_difference

    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    groups, patients = np.asarray(groups), np.asarray(patients)
    pred = (p >= threshold).astype(int)
    names = np.unique(groups)
    codes = np.searchsorted(names, groups)

    def eod(index):
        # fairlearn's definition, vectorised for the bootstrap: max over {TPR, FPR} of the between-group range
        yi, pi, gi = y[index], pred[index], codes[index]
        pos = np.bincount(gi, weights=yi, minlength=len(names))
        neg = np.bincount(gi, weights=1 - yi, minlength=len(names))
        if (pos == 0).any() or (neg == 0).any():
            return np.nan
        tpr = np.bincount(gi, weights=yi * pi, minlength=len(names)) / pos
        fpr = np.bincount(gi, weights=(1 - yi) * pi, minlength=len(names)) / neg
        return float(max(np.ptp(tpr), np.ptp(fpr)))

    if np.isnan(eod(np.arange(len(y)))):
        raise DataError("Some group has no positive or no negative image for this finding, so its sensitivity or "
                        "false-positive rate is undefined; choose a more common finding or merge groups.")
    point = float(equalized_odds_difference(y, pred, sensitive_features=groups))  # the point value: fairlearn's own
    reps = group_bootstrap(eod, len(y), patients, n_boot=n_boot, seed=seed)
    kept = reps[~np.isnan(reps)]
    if len(kept) < 10:
        raise DataError(f"Only {len(kept)} of {n_boot} bootstrap replicates held both classes in every group; "
                        "too few for an interval.")
    low, high = np.quantile(kept, [(1 - level) / 2, (1 + level) / 2])
    return {"eod": Interval(point, float(low), float(high), level), "n_dropped": int(len(reps) - len(kept)),
            "patients": int(len(np.unique(patients)))}


def load_nih(folder=None, **kwargs):
    """Return `data.findings.nih_findings(folder)`; `folder` None reads the bundled subset (data_samples/nih_cxr14).

    Lesson 05's NIH section runs on the bundled 1,000 images for every student; `NIH_DIR` may point at a larger
    folder in the ChestX-ray14 layout (`help(medkit.data.findings)` says how to build one).
    """
    from ..data.findings import nih_findings, nih_sample_dir

    return nih_findings(nih_sample_dir() if folder is None else folder, **kwargs)


def patients_on_both_sides(patients, parts: dict) -> int:
    """Return how many patients have images in more than one of `parts` ({name: index array}); 0 when grouped."""
    patients = np.asarray(patients)
    seen = [set(patients[index].tolist()) for index in parts.values()]
    return len(set.union(*[a & b for i, a in enumerate(seen) for b in seen[i + 1:]] or [set()]))
