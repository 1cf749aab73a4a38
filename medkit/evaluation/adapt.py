"""A new site that can label a few images: recalibrate the home model on k of them, score it on the rest.

A model trained at one hospital often keeps its ranking at a second site (AUC) but not its operating point
(accuracy): the threshold chosen on the home validation part no longer separates the classes there. With k
labelled images from the new site one can re-choose the threshold, fit a temperature, or shift the logits to
the new site's class prior (Saerens, Latinne & Decaestecker, "Adjusting the outputs of a classifier to new a
priori probabilities", Neural Computation 2002, doi:10.1162/089976602753284446).

This uses labels from the new site. The k images it learns from are never scored: `few_label_curve` scores
each (k, seed) only on the images left over, and draws the k as whole patients when `groups` is given, so no
patient is on both sides. Binary problems only (an operating point is involved).
"""

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from ..base.errors import DataError
from .calibration import TemperatureScaler
from .evaluate import choose_threshold
from .metrics import check_probs, classification_metrics

__all__ = ["METHODS", "Recalibration", "recalibrate", "draw_labelled", "scoring_mask", "score_held_out",
           "few_label_curve", "summarise_curve"]

METHODS = ("threshold", "temperature", "temperature+threshold", "prior")
_METRICS = ("acc", "sensitivity", "specificity", "auc")
_EDGE = np.nextafter(1.0, 0.0)  # the largest float below 1: keeps logits finite and distinct scores distinct


def _logit(p: np.ndarray) -> np.ndarray:
    return logit(np.clip(p, np.finfo(np.float64).tiny, _EDGE))


@dataclass(frozen=True)
class Recalibration:
    """How to read the home model's P(positive) at the new site: p -> sigmoid(logit(p) / T + shift) >= threshold.

    `threshold` applies to the recalibrated probabilities (what `apply` returns). `note` says what was done
    when the labels could not support the method (k = 0, one class only among the k).
    """

    method: str = "threshold"
    k: int = 0  # how many labelled images it was fitted on; 0 keeps the home model
    temperature: float = 1.0  # divides the logit; > 1 softens an overconfident model
    threshold: float = 0.5  # on the recalibrated probability
    prior_shift: float = 0.0  # added to the logit: logit(new prior) - logit(home prior)
    new_prior: float | None = None  # the new site's share of positives estimated from the k labels ("prior")
    note: str = ""

    def apply(self, probs) -> np.ndarray:
        """Return recalibrated probabilities, shaped like `probs` ((N,) P(positive) or (N, 2))."""
        flat = np.asarray(probs).ndim == 1
        table = check_probs(probs)
        if table.shape[1] != 2:
            raise DataError(f"Recalibration is for binary problems; got probabilities for {table.shape[1]} classes.")
        p = TemperatureScaler(self.temperature, fitted=True).transform(table)[:, 1]
        if self.prior_shift:
            p = expit(_logit(p) + self.prior_shift)
        return p if flat else np.stack([1 - p, p], axis=1)

    def predict(self, probs) -> np.ndarray:
        """Return 0/1 labels: the recalibrated P(positive) at or above `threshold`."""
        p = self.apply(probs)
        return ((p if p.ndim == 1 else p[:, 1]) >= self.threshold).astype(int)


def _binary(labels, n: int | None = None) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 1 or (n is not None and len(labels) != n):
        raise DataError(f"labels must be one 0/1 value per image, shaped ({n if n is not None else 'N'},); "
                        f"got shape {labels.shape}.")
    if len(labels) and not set(np.unique(labels).tolist()) <= {0, 1}:
        raise DataError(f"labels must be 0/1 (binary); got values {sorted(set(labels.tolist()))[:5]}.")
    return labels.astype(int)


def recalibrate(probs, labels, method: str = "threshold", *, home_threshold: float = 0.5,
                home_prior: float | None = None, rule: str = "youden", target: float | None = None) -> Recalibration:
    """Fit a `Recalibration` of the home model on the k labelled images of a new site.

    Args:
        probs, labels: the home model's probabilities ((k,) or (k, 2)) and the 0/1 labels of the k images.
        method: "threshold" (re-choose the threshold with `choose_threshold`'s `rule`); "temperature" (fit a
            temperature by NLL; the home threshold is carried through it, so the decisions stay the home
            model's and only the confidence changes); "temperature+threshold" (both: the threshold is chosen on
            the tempered probabilities); "prior" (shift the logits by logit(new prior) - logit(`home_prior`),
            Saerens et al. 2002, then decide at 0.5, the Bayes rule for accuracy; it assumes only the case mix
            changed and the home model was calibrated).
        home_threshold: the home model's threshold (checkpoint config), kept where the labels cannot say more.
        home_prior: the home training set's share of positives; needed for "prior".
        rule, target: the threshold rule of `medkit.evaluation.evaluate.choose_threshold`.

    k = 0 keeps the home model; k images of one class only keep the home threshold and temperature (neither
    can be chosen from one class) and say so in `note` and a warning.
    """
    if method not in METHODS:
        raise DataError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    home_threshold = float(home_threshold)
    if not 0 < home_threshold <= np.nextafter(1.0, 2.0):  # choose_threshold may give just above 1: "none positive"
        raise DataError(f"home_threshold must be in (0, 1]; got {home_threshold}.")
    if method == "prior" and (home_prior is None or not 0 < home_prior < 1):
        raise DataError(f"method='prior' needs home_prior, the home training set's share of positives in (0, 1) "
                        f"(e.g. the train row of the checkpoint's split report); got {home_prior!r}.")
    labels = _binary(labels)
    k = len(labels)
    home = Recalibration(method, k, 1.0, float(home_threshold))
    if k == 0:
        return _with(home, note="k=0: no labels from the new site, the home model is kept as it is")
    table = check_probs(probs, labels)
    if method == "prior":
        # Jeffreys-smoothed share: never 0 or 1, so the logit shift stays finite for any k >= 1
        new_prior = (labels.sum() + 0.5) / (k + 1)
        shift = float(logit(new_prior) - logit(home_prior))
        note = "" if len(np.unique(labels)) == 2 else _one_class_note(labels, "the prior estimate rests on one class")
        return _with(Recalibration(method, k, 1.0, 0.5, shift, float(new_prior)), note=note)
    if len(np.unique(labels)) < 2:
        return _with(home, note=_one_class_note(labels, "the home threshold and temperature are kept"))
    temperature = 1.0
    if method != "threshold":
        temperature = TemperatureScaler().fit(table, labels).temperature
    fitted = Recalibration(method, k, float(temperature), float(home_threshold))
    if method == "temperature":
        # the same decisions as the home model: its threshold, read through the same temperature
        carried = float(expit(_logit(np.array([home_threshold]))[0] / temperature))
        return _with(fitted, threshold=carried)
    return _with(fitted, threshold=choose_threshold(labels, fitted.apply(table), rule, target))


def _with(rec: Recalibration, **changes) -> Recalibration:
    """Return `rec` with `changes`; a note on labels that could not support the method is also warned."""
    values = {**rec.__dict__, **changes}
    if values.get("note") and rec.k:  # k = 0 is asked for, not a surprise: the note alone says it
        warnings.warn(values["note"], stacklevel=3)
    return Recalibration(**values)


def _one_class_note(labels: np.ndarray, what: str) -> str:
    return (f"the {len(labels)} labelled image(s) are all class {int(labels[0])}: {what}. Label images of both "
            "classes to recalibrate.")


# --- drawing k labelled images and scoring the rest ---------------------------------------------


def _group_ids(groups, n: int) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n:
        raise DataError(f"{len(groups)} group ids for {n} images; give one patient key per image (or groups=None).")
    return np.unique(groups, return_inverse=True)[1]


def draw_labelled(labels, k: int, seed: int = 0, groups=None) -> np.ndarray:
    """Return the sorted indices of about k images to label: whole patients, stratified by class where possible.

    Patients are taken in a seeded random order, each time from the class (a patient's majority label) furthest
    below its share of the k; a patient who would overshoot k is skipped, so the draw holds k images unless no
    patient fits the remainder. The same (labels, groups, k, seed) always gives the same draw.
    """
    labels = _binary(labels)
    k, n = int(k), len(labels)
    if k < 0:
        raise DataError(f"k must be >= 0 labelled images; got {k}.")
    if k >= n:
        raise DataError(f"k={k} labelled images out of {n} would leave nothing to score; use k < {n}.")
    if k == 0:
        return np.array([], dtype=int)
    ids = _group_ids(groups, n)
    size = np.bincount(ids)
    positive = np.bincount(ids, labels, minlength=len(size)) / size >= 0.5
    order = np.random.default_rng(seed).permutation(len(size))
    queues = {c: [g for g in order if positive[g] == c] for c in (False, True)}
    want_pos = int(round(k * labels.mean()))
    if k >= 2 and queues[False] and queues[True]:
        want_pos = min(max(want_pos, 1), k - 1)  # both classes among the k whenever the site has both
    want = {True: want_pos, False: k - want_pos}
    have, taken, total = {True: 0, False: 0}, [], 0
    while total < k:
        for c in sorted((True, False), key=lambda c: have[c] - want[c]):
            fits = next((i for i, g in enumerate(queues[c]) if size[g] <= k - total), None)
            if fits is not None:
                g = queues[c].pop(fits)
                taken.append(g)
                have[c], total = have[c] + size[g], total + size[g]
                break
        else:
            break
    return np.flatnonzero(np.isin(ids, taken))


def scoring_mask(n: int, used, groups=None) -> np.ndarray:
    """Return a boolean mask of the images that may be scored: not used, and no patient shared with one used."""
    ids = _group_ids(groups, int(n))
    used = np.asarray(used, dtype=int)
    return ~np.isin(ids, ids[used])


def score_held_out(labels, probs, threshold: float, mask) -> dict:
    """Return acc, sensitivity, specificity, auc (NaN with one class) and n_scored on the images in `mask`."""
    labels, mask = _binary(labels), np.asarray(mask, dtype=bool)
    if not mask.any():
        raise DataError("No image left to score: every image was used for recalibration. Use a smaller k.")
    m = classification_metrics(labels[mask], check_probs(probs, labels)[mask], threshold)
    return {**{name: float(m[name]) for name in _METRICS}, "n_scored": int(mask.sum())}


def few_label_curve(probs, labels, groups=None, ks=(0, 10, 25, 50, 100), seeds=range(5), method: str = "threshold",
                    home_threshold: float = 0.5, *, home_prior: float | None = None, rule: str = "youden",
                    target: float | None = None) -> pd.DataFrame:
    """Return one row per (k, seed): the home model recalibrated on k labelled images, scored on the others.

    Args:
        probs, labels: the home model's probabilities and the 0/1 labels of every image of the new site.
        groups: a patient key per image; the k are then drawn as whole patients and no patient straddles.
        ks, seeds: label budgets and draws; each (k, seed) draws with `draw_labelled`, so every method sees
            the same images for the same (k, seed).
        method, home_threshold, home_prior, rule, target: as in `recalibrate`.

    Columns: k, seed, acc, sensitivity, specificity, auc, threshold, n_scored, then method, n_labelled (can
    fall short of k when whole patients do not fit), temperature, prior_shift and note. k = 0 is the home model
    scored on every image.
    """
    labels = _binary(labels)
    probs = check_probs(probs, labels)
    rows = []
    for k in ks:
        for seed in seeds:
            used = draw_labelled(labels, k, seed, groups)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a degenerate draw is reported in the `note` column instead
                rec = recalibrate(probs[used], labels[used], method, home_threshold=home_threshold,
                                  home_prior=home_prior, rule=rule, target=target)
            scores = score_held_out(labels, rec.apply(probs), rec.threshold, scoring_mask(len(labels), used, groups))
            rows.append({"k": int(k), "seed": int(seed), **scores, "threshold": rec.threshold, "method": method,
                         "n_labelled": len(used), "temperature": rec.temperature, "prior_shift": rec.prior_shift,
                         "note": rec.note})
    columns = ["k", "seed", *_METRICS, "threshold", "n_scored", "method", "n_labelled", "temperature",
               "prior_shift", "note"]
    return pd.DataFrame(rows, columns=columns)


def summarise_curve(curve: pd.DataFrame, metrics=_METRICS, level: float = 0.95) -> pd.DataFrame:
    """Return per k (and method) the median and the 2.5 / 97.5 percentiles over seeds of each metric.

    Columns `<metric>`, `<metric>_lo`, `<metric>_hi`, plus `seeds` and the median `n_scored`. The spread is
    over draws of the k labelled images (which images a site happens to label), not a confidence interval.
    """
    keys = [c for c in ("method", "k") if c in curve.columns]
    lo, hi = (1 - level) / 2, (1 + level) / 2
    rows = []
    for key, part in curve.groupby(keys, sort=False):
        row = dict(zip(keys, key if isinstance(key, tuple) else (key,)))
        for name in metrics:
            values = part[name].dropna()
            row[name] = float(values.median()) if len(values) else float("nan")
            row[f"{name}_lo"] = float(values.quantile(lo)) if len(values) else float("nan")
            row[f"{name}_hi"] = float(values.quantile(hi)) if len(values) else float("nan")
        row["seeds"], row["n_scored"] = len(part), float(part["n_scored"].median())
        rows.append(row)
    return pd.DataFrame(rows)
