"""How much a split that ignores patients flatters a model: image-level against patient-grouped held-out AUC (lesson 01).

A random (image-level) split puts some images of a test patient in train; a patient-grouped split
keeps every patient on one side. `split_gap` trains the same model on both kinds of split, repeated
over seeds, and reports the held-out AUC of each with the number of test patients that leaked.
"""

import numpy as np

from ..base.errors import DataError
from ..core.features import linear_probe
from ..data import group_split, stratified_split
from ..evaluation.metrics import classification_metrics

__all__ = ["leaked_groups", "split_gap"]


def leaked_groups(train_groups, test_groups) -> int:
    """Return how many groups (patients) of the test part also have images in train."""
    return len(set(np.asarray(test_groups).tolist()) & set(np.asarray(train_groups).tolist()))


def _default_fit(X, y):
    return linear_probe(X, y)


def split_gap(X, y, groups, seeds=(0, 1, 2), test_size=0.2, fit=None):
    """Return a DataFrame of held-out AUC under an image-level and a patient-grouped split, per seed.

    Args:
        X: (N, D) features of the images (e.g. `features.extract_features`), or anything `fit` accepts.
        y: (N,) labels; groups: (N,) patient keys.
        seeds: one image-level and one patient-grouped split per seed, both stratified by label.
        test_size: fraction of the images held out (approximate for the grouped split: patients are never cut).
        fit: (X_train, y_train) -> a fitted model with `predict_proba` (default: `features.linear_probe`).

    Each row: seed, split ("image" or "patient"), auc, n_train, n_test, test_patients, leaked_patients
    (test patients with images in train) and leaked_images (test images whose patient is in train).
    """
    import pandas as pd

    X, y, groups = np.asarray(X), np.asarray(y), np.asarray(groups)
    if not len(X) == len(y) == len(groups):
        raise DataError(f"split_gap needs one label and one patient key per image; got {len(X)} images, "
                        f"{len(y)} labels, {len(groups)} keys.")
    fit = fit or _default_fit
    rows = []
    for seed in seeds:
        for split, (train, test) in (("image", stratified_split(y, test_size, seed)),
                                     ("patient", group_split(groups, test_size, seed, y))):
            model = fit(X[train], y[train])
            metrics = classification_metrics(y[test], model.predict_proba(X[test]))
            rows.append({"seed": seed, "split": split, "auc": metrics["auc"], "n_train": len(train),
                         "n_test": len(test), "test_patients": len(set(groups[test].tolist())),
                         "leaked_patients": leaked_groups(groups[train], groups[test]),
                         "leaked_images": int(np.isin(groups[test], groups[train]).sum())})
    return pd.DataFrame(rows)
