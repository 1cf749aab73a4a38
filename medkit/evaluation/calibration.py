"""Calibration: does "90% pneumonia" come true nine times in ten? Reliability, ECE, temperature scaling.

Lesson 05 uses these. Confidence is the top-label probability (Guo et al., "On Calibration of Modern
Neural Networks", 2017), so the same code serves two or more classes.
"""

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize_scalar
from sklearn.calibration import calibration_curve

from ..base.errors import DataError
from .metrics import check_probs

__all__ = ["reliability_curve", "expected_calibration_error", "plot_reliability", "negative_log_likelihood",
           "TemperatureScaler"]


def _checked(labels, probs, n_bins: int) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    probs = check_probs(probs, labels)
    if labels.ndim != 1 or labels.min() < 0 or labels.max() >= probs.shape[1]:
        raise DataError(f"labels must be integers in 0..{probs.shape[1] - 1}, shaped (N,); "
                        f"got shape {labels.shape}, values {np.unique(labels)[:5].tolist()}.")
    if int(n_bins) < 1:
        raise DataError(f"n_bins must be at least 1; got {n_bins}.")
    return labels.astype(int), probs


def reliability_curve(labels, probs, n_bins: int = 10) -> dict:
    """Return, per equal-width confidence bin, the mean confidence, the accuracy and the count (NaN where empty).

    scikit-learn's `calibration_curve` on (top label correct?, top-label confidence) gives the accuracy and the
    mean confidence of each non-empty bin; the counts come from the same binning (right-closed bins, as there).
    """
    labels, probs = _checked(labels, probs, n_bins)
    confidence, correct = probs.max(1), (probs.argmax(1) == labels).astype(int)
    edges = np.linspace(0, 1, int(n_bins) + 1)
    count = np.bincount(np.searchsorted(edges[1:-1], confidence), minlength=int(n_bins))
    used = count > 0
    mean_conf, accuracy = np.full(int(n_bins), np.nan), np.full(int(n_bins), np.nan)
    accuracy[used], mean_conf[used] = calibration_curve(correct, confidence, pos_label=1, n_bins=int(n_bins),
                                                        strategy="uniform")
    return {"edges": edges, "confidence": mean_conf, "accuracy": accuracy, "count": count}


def expected_calibration_error(labels, probs, n_bins: int = 15) -> float:
    """Return the ECE: the count-weighted mean gap |accuracy - confidence| over confidence bins."""
    curve = reliability_curve(labels, probs, n_bins)
    used = curve["count"] > 0
    gaps = np.abs(curve["accuracy"][used] - curve["confidence"][used])
    return float((gaps * curve["count"][used]).sum() / curve["count"].sum())


def plot_reliability(labels, probs, *, n_bins: int = 10, label: str = "", ax=None):
    """Draw a reliability diagram (accuracy against confidence per bin); the diagonal is perfect calibration."""
    import matplotlib.pyplot as plt

    curve = reliability_curve(labels, probs, n_bins)
    ece = expected_calibration_error(labels, probs)
    ax = ax or plt.subplots(figsize=(4, 4))[1]
    used = curve["count"] > 0
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.plot(curve["confidence"][used], curve["accuracy"][used], "o-", label=f"{label} ECE {ece:.3f}".strip())
    ax.set(xlabel="confidence (top-label probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
           title="Reliability diagram")
    ax.legend(loc="upper left", fontsize=8)
    return ax


def _log_probs(probs) -> np.ndarray:
    """Return logits that reproduce `probs` under softmax, keeping the ranking of every score."""
    probs = check_probs(probs)
    if probs.shape[1] == 2:
        # Binary: the logit of P(positive). Models store 1 - p, which rounds to exactly 0 once p is within
        # 1e-16 of 1; working from p itself, clipped to the largest float below 1, keeps every distinct
        # score distinct (AUC unchanged) and maps p = 1.0 to a logit of about 37, not to infinity.
        p = np.clip(probs[:, 1], np.finfo(np.float64).tiny, np.nextafter(1.0, 0.0))
        return np.stack([np.zeros_like(p), np.log(p) - np.log1p(-p)], axis=1)
    # log-probabilities are logits up to a per-row constant, which softmax ignores: scaling them by
    # 1/T is exactly temperature scaling of the logits. Only exact zeros are clipped.
    return np.log(np.clip(probs, np.finfo(np.float64).tiny, 1.0))


def _as_logits(scores, logits: bool) -> np.ndarray:
    """Return (N, K) logits from probabilities, or from logits / binary decision values when `logits`."""
    if not logits:
        return _log_probs(scores)
    z = np.asarray(scores, dtype=np.float64)
    if z.ndim == 1:
        z = np.stack([np.zeros_like(z), z], axis=1)  # a binary decision value is the logit of class 1
    if z.ndim != 2 or z.shape[1] < 2 or not np.all(np.isfinite(z)):
        raise DataError(f"Logits must be finite and shaped (N,) or (N, K>=2); got shape {z.shape}.")
    return z


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def _nll(z: np.ndarray, labels: np.ndarray) -> float:
    z = z - z.max(1, keepdims=True)
    return float(-(z[np.arange(len(labels)), labels] - np.log(np.exp(z).sum(1))).mean())


def negative_log_likelihood(labels, scores, *, logits: bool = False, temperature: float = 1.0) -> float:
    """Return the mean negative log-likelihood of `labels` under probabilities (or logits) divided by `temperature`."""
    z = _as_logits(scores, logits)
    labels = np.asarray(labels).astype(int)
    if labels.ndim != 1 or len(labels) != len(z) or labels.min() < 0 or labels.max() >= z.shape[1]:
        raise DataError(f"Give one label in 0..{z.shape[1] - 1} per row: {len(z)} rows, labels shaped {labels.shape}.")
    return _nll(z / float(temperature), labels)


@dataclass
class TemperatureScaler:
    """Temperature scaling: divide the logits by one number T fitted on validation data (Guo et al. 2017).

    T > 1 softens an overconfident model, T < 1 sharpens an underconfident one. The ranking of the
    scores, hence the AUC, does not change; only how far to trust them does.
    """

    temperature: float = 1.0  # 1.0 until `fit` is called: leaves probabilities unchanged
    fitted: bool = False

    def fit(self, val_probs, val_labels, *, logits: bool = False) -> "TemperatureScaler":
        """Fit T by minimising the negative log-likelihood on validation data.

        Pass probabilities, or with `logits=True` the model's raw scores: (N, K) logits, or (N,) binary
        decision values such as scikit-learn's `decision_function`. Logits are better when the model is so
        confident that its probabilities round to exactly 0 or 1 (then how confident is lost).
        """
        z = _as_logits(val_probs, logits)
        labels = np.asarray(val_labels).astype(int)
        if labels.ndim != 1 or len(labels) != len(z):
            raise DataError(f"{len(z)} probability rows for labels shaped {labels.shape}; give one label per row.")
        if labels.min() < 0 or labels.max() >= z.shape[1]:
            raise DataError(f"labels must lie in 0..{z.shape[1] - 1}; got {np.unique(labels).tolist()[:5]}.")

        def nll(log_t):
            return _nll(z / np.exp(log_t), labels)

        # a bounded 1-D search on log T is deterministic and needs no learning rate
        result = minimize_scalar(nll, bounds=(np.log(0.01), np.log(100.0)), method="bounded", options={"xatol": 1e-5})
        self.temperature, self.fitted = float(np.exp(result.x)), True
        return self

    def transform(self, probs, *, logits: bool = False) -> np.ndarray:
        """Return the probabilities after dividing the logits by the fitted temperature."""
        return _softmax(_as_logits(probs, logits) / self.temperature)

    def fit_transform(self, val_probs, val_labels, *, logits: bool = False) -> np.ndarray:
        return self.fit(val_probs, val_labels, logits=logits).transform(val_probs, logits=logits)
