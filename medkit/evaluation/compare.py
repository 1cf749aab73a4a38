"""Is a retrained model at least as good as the one in use? A paired, patient-level test of an AUC difference.

Both models score the same images; a patient's images are not independent evidence (follow-up films of one
child look alike), so the bootstrap resamples **patients**, each bringing all its images, and recomputes both
AUCs on the same replicate: the interval of the difference then carries the pairing (the two models err on
the same hard cases) and the clustering. DeLong's test is the usual closed form for paired AUCs, but it treats
images as independent, and no maintained Python package of it was found (MLstatkit, confidenceinterval: one
author each); the patient bootstrap is the one test here.

Non-inferiority (the design FDA's guidance on predetermined change control plans points to for a model
update): the candidate may replace the current model when the lower end of the 95% interval of
AUC(candidate) - AUC(current) lies above -margin, i.e. a loss larger than `margin` is ruled out at one-sided
2.5%. Used by `medkit compare` (`medkit.fit.compare`) and lesson 06.
"""

from dataclasses import dataclass

import numpy as np

from ..base.errors import DataError
from .evaluate import Interval
from .metrics import check_probs

__all__ = ["DEFAULT_MARGIN", "VERDICTS", "PairedAUC", "paired_auc_difference", "weighted_aucs"]

# 0.01 AUC: about the seed-to-seed spread of `medkit fit` on the bundled X-rays; a smaller margin asks for more
# patients than a locked test part usually has before any candidate can pass
DEFAULT_MARGIN = 0.01
VERDICTS = ("superior", "non-inferior", "inconclusive", "inferior")
_MIN_PATIENTS = 2  # per class: fewer and most replicates miss a class


@dataclass(frozen=True)
class PairedAUC:
    """AUC of the current and the candidate model on the same images, and their difference with its test."""

    current: float
    candidate: float
    difference: Interval  # candidate - current, percentile interval over patient replicates
    p_difference: float  # two-sided: is the difference 0?
    p_noninferior: float  # one-sided: is the candidate worse by margin or more? small = non-inferior
    margin: float
    n_images: int
    n_patients: int
    n_boot: int  # replicates kept (each held both classes)

    @property
    def verdict(self) -> str:
        """Return superior, non-inferior, inferior (worse by more than margin) or inconclusive."""
        if self.difference.low > 0:
            return "superior"
        if self.difference.low > -self.margin:
            return "non-inferior"
        if self.difference.high < -self.margin:
            return "inferior"
        return "inconclusive"

    @property
    def promotes(self) -> bool:
        """Return True when the candidate is non-inferior (or superior) on these images."""
        return self.verdict in ("superior", "non-inferior")

    def as_dict(self) -> dict:
        """Return the numbers a record or a JSON line keeps."""
        d = self.difference
        return {"auc_current": self.current, "auc_candidate": self.candidate, "difference": d.estimate,
                "ci95": [d.low, d.high], "p_difference": self.p_difference, "p_noninferior": self.p_noninferior,
                "margin": self.margin, "verdict": self.verdict, "n": self.n_images, "patients": self.n_patients,
                "n_boot": self.n_boot}

    def __str__(self) -> str:
        d = self.difference
        return (f"AUC {self.current:.3f} -> {self.candidate:.3f}, difference {d.estimate:+.3f} "
                f"[{d.low:+.3f}, {d.high:+.3f}], p={self.p_difference:.3g}, margin {self.margin}: {self.verdict}")


def weighted_aucs(labels: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Return the Mann-Whitney AUC (ties count one half) of `scores` under each row of `weights` (B, N).

    A weight is how many times an image is drawn in a replicate, so row b is the AUC of the b-th resample.
    """
    pos, neg = labels == 1, labels == 0
    order = np.argsort(scores[neg], kind="stable")
    neg_sorted = scores[neg][order]
    left = np.searchsorted(neg_sorted, scores[pos], side="left")  # negatives strictly below each positive
    right = np.searchsorted(neg_sorted, scores[pos], side="right")  # ... and those tied with it
    w_neg = weights[:, neg][:, order]
    below = np.concatenate([np.zeros((len(weights), 1)), np.cumsum(w_neg, axis=1)], axis=1)
    w_pos = weights[:, pos]
    wins = (w_pos * (below[:, left] + below[:, right])).sum(1) / 2
    total = w_pos.sum(1) * w_neg.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return wins / total


_CHUNK = 250  # replicates per block: the weights are (block, images) floats, bounded for large test parts


def _patient_weights(patients: np.ndarray, n_boot: int, seed: int):
    """Yield image weights (block, N) of patient resamples: each patient drawn with replacement brings all its images."""
    ids, where = np.unique(patients, return_inverse=True)
    rng = np.random.default_rng(seed)
    for start in range(0, n_boot, _CHUNK):
        draws = rng.integers(0, len(ids), (min(_CHUNK, n_boot - start), len(ids)))
        counts = np.zeros(draws.shape)
        np.add.at(counts, (np.arange(len(draws))[:, None], draws), 1)
        yield counts[:, where]


def _scores(labels, probs, name: str) -> np.ndarray:
    probs = check_probs(probs, labels)
    if probs.shape[1] != 2:
        raise DataError(f"The paired AUC test is for two classes; {name} has probabilities for {probs.shape[1]}.")
    return probs[:, 1]


def paired_auc_difference(labels, probs_current, probs_candidate, patients, *, margin: float = DEFAULT_MARGIN,
                          n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> PairedAUC:
    """Return AUC(candidate) - AUC(current) on the same images with a paired patient bootstrap.

    Args:
        labels: 0/1 per image; probs_current, probs_candidate: (N, 2) probabilities of the two models on
            the same images in the same order; patients: a patient id per image.
        margin: the AUC loss still accepted (non-inferiority margin), >= 0.
        n_boot: patient replicates; those without both classes are dropped (counted out of `n_boot`).
    """
    labels = np.asarray(labels).astype(int)
    patients = np.asarray(patients)
    if labels.ndim != 1 or len(patients) != len(labels):
        raise DataError(f"Give one label and one patient id per image; got {labels.shape} labels and "
                        f"{len(patients)} patient ids.")
    current, candidate = _scores(labels, probs_current, "the current model"), _scores(labels, probs_candidate,
                                                                                      "the candidate")
    if not (np.isfinite(margin) and margin >= 0):
        raise DataError(f"margin must be a number >= 0 (an AUC loss, e.g. {DEFAULT_MARGIN}); got {margin}.")
    if not 0 < level < 1 or int(n_boot) < 100:
        raise DataError(f"Use 0 < level < 1 and n_boot >= 100 (2000 recommended); got level={level}, n_boot={n_boot}.")
    per_class = [len(np.unique(patients[labels == k])) for k in (0, 1)]
    if min(per_class) < _MIN_PATIENTS:
        raise DataError(f"The paired test needs at least {_MIN_PATIENTS} patients of each class; these images have "
                        f"{per_class[0]} with negative and {per_class[1]} with positive images. Score more patients.")
    ones = np.ones((1, len(labels)))
    auc_current, auc_candidate = weighted_aucs(labels, current, ones)[0], weighted_aucs(labels, candidate, ones)[0]
    diffs = np.concatenate([weighted_aucs(labels, candidate, w) - weighted_aucs(labels, current, w)
                            for w in _patient_weights(patients, int(n_boot), seed)])
    diffs = diffs[np.isfinite(diffs)]  # a replicate without positives or negatives has no AUC
    low, high = np.quantile(diffs, [(1 - level) / 2, (1 + level) / 2])
    kept = len(diffs)
    # bootstrap p-values by inverting the percentile interval: the share of replicates on the other side
    p_difference = min(1.0, 2 * (1 + min((diffs <= 0).sum(), (diffs >= 0).sum())) / (kept + 1))
    p_noninferior = float((1 + (diffs <= -margin).sum()) / (kept + 1))
    return PairedAUC(current=float(auc_current), candidate=float(auc_candidate),
                     difference=Interval(float(auc_candidate - auc_current), float(low), float(high), level),
                     p_difference=float(p_difference), p_noninferior=p_noninferior, margin=float(margin),
                     n_images=len(labels), n_patients=len(np.unique(patients)), n_boot=kept)
