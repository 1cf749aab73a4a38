"""The metrics clinicians read: AUROC, accuracy, sensitivity, specificity, balanced accuracy."""

import numpy as np
from sklearn.metrics import confusion_matrix, roc_auc_score

from ..base.errors import DataError

__all__ = ["check_probs", "auc", "sensitivity_specificity", "classification_metrics"]


def check_probs(probs, labels=None) -> np.ndarray:
    """Return `probs` as an (N, K) array after checking it is a valid probability table."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim == 1:
        probs = np.stack([1 - probs, probs], axis=1)
    if probs.ndim != 2 or probs.shape[1] < 2:
        raise DataError(f"Probabilities must be shaped (N,) or (N, K>=2); got {probs.shape}.")
    if not np.all(np.isfinite(probs)):  # not a scale problem: softmax would not fix it
        rows = int((~np.isfinite(probs)).any(axis=1).sum())
        raise DataError(f"Probabilities contain NaN or inf in {rows} of {len(probs)} row(s): the model produced "
                        "non-finite outputs, which comes from NaN/inf weights (a diverged training run or a damaged "
                        "checkpoint) or NaN inputs. Check the checkpoint's weights and the input images.")
    if probs.min() < 0 or probs.max() > 1:
        raise DataError(f"Probabilities must lie in [0, 1]; got values in [{np.nanmin(probs):.3g}, {np.nanmax(probs):.3g}]. "
                        "Apply softmax to logits first.")
    if labels is not None and len(labels) != len(probs):
        raise DataError(f"{len(probs)} probability rows for {len(labels)} labels.")
    return probs


def auc(labels, probs) -> float:
    """Return the AUROC: binary, or one-vs-rest macro for more than two classes."""
    labels, probs = np.asarray(labels), check_probs(probs, labels)
    if len(np.unique(labels)) < 2:
        raise DataError("AUC needs both classes among the labels; this set has only one.")
    if probs.shape[1] == 2:
        return float(roc_auc_score(labels, probs[:, 1]))
    return float(roc_auc_score(labels, probs, multi_class="ovr", average="macro", labels=np.arange(probs.shape[1])))


def sensitivity_specificity(labels, pred, num_classes: int = 2) -> dict:
    """Return sensitivity and specificity of hard predictions: binary, or one-vs-rest averaged over classes present.

    Binary: the recall of class 1 and of class 0 (NaN when a class is absent). More classes: each class's
    recall and its one-vs-rest specificity, averaged over the classes that occur.
    """
    labels, pred = np.asarray(labels), np.asarray(pred)
    ks = range(int(num_classes))
    # one confusion matrix from scikit-learn: rows are true classes, columns predictions
    cm = confusion_matrix(labels, pred, labels=list(ks))
    positives, predicted, total = cm.sum(1), cm.sum(0), cm.sum()
    sens = {k: cm[k, k] / positives[k] for k in ks if positives[k]}
    spec = {k: (total - positives[k] - predicted[k] + cm[k, k]) / (total - positives[k]) for k in ks if total - positives[k]}
    if num_classes == 2:
        return {"sensitivity": float(sens.get(1, float("nan"))), "specificity": float(sens.get(0, float("nan")))}
    return {"sensitivity": float(np.mean(list(sens.values()))), "specificity": float(np.mean(list(spec.values())))}


def classification_metrics(labels, probs, threshold: float = 0.5) -> dict:
    """Return auc, acc, balanced_acc and (binary) sensitivity and specificity at `threshold`, plus n."""
    labels, probs = np.asarray(labels), check_probs(probs, labels)
    if probs.shape[1] == 2:
        pred = (probs[:, 1] >= threshold).astype(int)
    else:
        pred = probs.argmax(1)
    out = {"auc": auc(labels, probs) if len(np.unique(labels)) > 1 else float("nan"),
           "acc": float((pred == labels).mean()), "n": int(len(labels))}
    recalls = [float((pred[labels == k] == k).mean()) for k in range(probs.shape[1]) if (labels == k).any()]
    out["balanced_acc"] = float(np.mean(recalls))
    if probs.shape[1] == 2:
        out.update(sensitivity_specificity(labels, pred))
        out["threshold"] = float(threshold)
    return out
