"""Watch a deployed model's inputs: a two-sample test between reference embeddings and each incoming batch.

The monitor works on the model's own embeddings (the features in front of its head), reduced by
PCA fitted on the reference set (plus each embedding's distance to that PCA subspace), standardised, because a shift that changes the features is the
shift that can change the predictions. Two tests:

- "mmd": maximum mean discrepancy with a Gaussian kernel (bandwidth: median distance in the
  reference), p-value from a permutation test (Gretton et al., JMLR 2012);
- "ks": a Kolmogorov-Smirnov test per feature, Bonferroni-corrected (Rabanser et al.,
  "Failing loudly", NeurIPS 2019, found this simple test as good as most).

An alarm is raised when p < alpha. Lesson 06 measures the false-alarm rate on clean batches and the
detection rate on batches from a simulated scanner change (`medkit.data.sites`).
"""

import zipfile
from dataclasses import dataclass
from functools import wraps
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ..base.atomic import atomic_path
from ..base.errors import DataError
from ..base.paths import check_file
from ..data.sites import SCANNERS

__all__ = ["DriftResult", "DriftMonitor", "sample_batches", "alarm_rates"]

_METHODS = ("mmd", "ks")


@dataclass(frozen=True)
class DriftResult:
    """The outcome of testing one batch: statistic, p-value and whether it raised an alarm."""

    method: str
    statistic: float
    p_value: float
    alarm: bool
    n: int

    def __str__(self) -> str:
        return f"{self.method}: statistic {self.statistic:.4g}, p = {self.p_value:.3f}, n = {self.n}" + \
            ("  -> ALARM" if self.alarm else "")


def _one_blas_thread(fn):
    """Run `fn` with one BLAS thread: these matrices are small, and a busy machine makes BLAS threads 10x slower."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        with threadpool_limits(1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0)


def _features(X: np.ndarray, mean: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Return the PCA components of X and, last, the log distance of each row to the PCA subspace.

    The distance (the "squared prediction error" of process monitoring) catches shifts that leave
    the principal components alone but move the embeddings off the subspace the reference spans.
    """
    centred = X - mean
    Z = centred @ components.T
    residual = ((centred - Z @ components) ** 2).sum(1)
    return np.concatenate([Z, np.log(residual + 1e-12)[:, None]], axis=1)


# what np.load raises on a reference file that is missing, truncated, not an npz or lacks a field
BAD_REFERENCE = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile)


def check_saved_for(path, saved_for: str, model_sha256: str, what: str, fix: str) -> None:
    """Refuse a reference file (`what`) saved for another model file than the one of sha256 `model_sha256`."""
    if model_sha256 and saved_for and saved_for != model_sha256:
        raise DataError(f"{path} was saved for another model file (sha256 {saved_for[:12]}..., this one "
                        f"{model_sha256[:12]}...): a stale {what}. {fix}")


class DriftMonitor:
    """Reference statistics of embeddings plus a two-sample test for incoming batches.

    Build one with `DriftMonitor.fit(reference_embeddings)`, save it beside the model with `save`,
    and call `test(batch_embeddings)` on each batch that arrives in use.
    """

    def __init__(self, mean, components, scale, reference, *, method: str = "mmd", alpha: float = 0.05,
                 bandwidth: float | None = None, n_permutations: int = 500, min_batch: int = 10, seed: int = 0):
        if method not in _METHODS:
            raise DataError(f"Unknown drift test {method!r}; choose one of {', '.join(_METHODS)}.")
        if not 0 < alpha < 1:
            raise DataError(f"alpha must be in (0, 1), e.g. 0.05; got {alpha}.")
        self.mean, self.components = np.asarray(mean, np.float64), np.asarray(components, np.float64)
        # scale: (2, k + 1) centre and spread of the reference features; reference: standardised features
        self.scale, self.reference = np.asarray(scale, np.float64), np.asarray(reference, np.float64)
        self.method, self.alpha, self.n_permutations = method, float(alpha), int(n_permutations)
        self.min_batch, self.seed = int(min_batch), int(seed)
        if bandwidth is None:  # the median heuristic, on the reference only
            d = _sq_dists(self.reference, self.reference)
            bandwidth = float(np.sqrt(np.median(d[np.triu_indices_from(d, k=1)]) / 2.0))
        self.bandwidth = float(bandwidth)

    @classmethod
    @_one_blas_thread
    def fit(cls, embeddings, *, n_components: int = 16, max_reference: int = 300, seed: int = 0, **kwargs):
        """Fit PCA on reference embeddings (N, D) of in-distribution images and keep up to `max_reference` of them.

        Args:
            embeddings: the model's embeddings of clean validation images (never of the images to be tested).
            n_components: PCA components kept; a few dozen carry most of the variance and keep the test strong.
            max_reference: reference sample size kept for the test (cost grows with its square); half the
                embeddings fit the PCA, the other half (up to `max_reference`) is the test's reference sample.
            seed: fixes the split into halves and the permutations.
            **kwargs: method ("mmd" or "ks"), alpha, n_permutations, min_batch.
        """
        X = np.asarray(embeddings, dtype=np.float64)
        if X.ndim != 2:
            raise DataError(f"Reference embeddings must be (N, D); got shape {X.shape}.")
        if len(X) < 4 * n_components or len(X) < 40:
            raise DataError(f"{len(X)} reference embeddings are too few to fit {n_components} components; "
                            f"use at least {max(40, 4 * n_components)} clean images.")
        # PCA is fitted on one half and the test reference is the other half: images the PCA has seen lie
        # closer to its subspace than new ones, which would bias the residual feature towards alarms.
        order = np.random.default_rng(seed).permutation(len(X))
        fit_part, ref_part = X[order[: len(X) // 2]], X[order[len(X) // 2:][:max_reference]]
        mean = fit_part.mean(0)
        _, _, vt = np.linalg.svd(fit_part - mean, full_matrices=False)
        components = vt[:n_components]
        # Standardise with the fit half too, so the reference sample and incoming batches are treated alike
        # (the permutation test needs them exchangeable when nothing has drifted).
        fit_features = _features(fit_part, mean, components)
        center, scale = fit_features.mean(0), fit_features.std(0) + 1e-12
        return cls(mean, components, np.stack([center, scale]), (_features(ref_part, mean, components) - center) / scale,
                   seed=seed, **kwargs)

    def project(self, embeddings) -> np.ndarray:
        """Return embeddings as the monitor's standardised features: PCA components, then the log residual."""
        X = np.asarray(embeddings, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mean.shape[0]:
            raise DataError(f"Expected embeddings shaped (N, {self.mean.shape[0]}); got {X.shape}. "
                            "Were they computed by the same model as the reference?")
        return (_features(X, self.mean, self.components) - self.scale[0]) / self.scale[1]

    def _mmd_test(self, Z: np.ndarray, rng) -> tuple[float, float]:
        m, n = len(self.reference), len(Z)
        pooled = np.concatenate([self.reference, Z])
        K = np.exp(-_sq_dists(pooled, pooled) / (2.0 * self.bandwidth ** 2))

        def mmd2(is_test: np.ndarray) -> np.ndarray:  # is_test: (P, m+n) boolean masks, one per labelling
            a = (~is_test).astype(np.float64) / m
            b = is_test.astype(np.float64) / n
            w = a - b  # MMD^2 (biased, V-statistic) = w^T K w
            return ((w @ K) * w).sum(1)

        observed = np.zeros(m + n, bool)
        observed[m:] = True
        stat = float(mmd2(observed[None])[0])
        perms = np.stack([rng.permutation(observed) for _ in range(self.n_permutations)])
        null = mmd2(perms)
        return stat, float((1 + (null >= stat).sum()) / (1 + self.n_permutations))

    def _ks_test(self, Z: np.ndarray) -> tuple[float, float]:
        from scipy.stats import ks_2samp

        tests = [ks_2samp(self.reference[:, j], Z[:, j]) for j in range(Z.shape[1])]
        p_min = min(t.pvalue for t in tests)
        return float(max(t.statistic for t in tests)), float(min(1.0, p_min * Z.shape[1]))

    @_one_blas_thread
    def test(self, embeddings, seed: int | None = None) -> DriftResult:
        """Test one incoming batch of embeddings against the reference; alarm when p < alpha."""
        Z = self.project(embeddings)
        if len(Z) < self.min_batch:
            raise DataError(f"A batch of {len(Z)} images is too small for the drift test (at least {self.min_batch}); "
                            "gather more images before testing, e.g. a day's worth.")
        rng = np.random.default_rng(self.seed if seed is None else seed)
        stat, p = self._mmd_test(Z, rng) if self.method == "mmd" else self._ks_test(Z)
        return DriftResult(self.method, stat, p, p < self.alpha, len(Z))

    def save(self, path, model_sha256: str = "") -> Path:
        """Write the reference statistics and settings to an .npz file (atomically), tied to a model's sha256."""
        path = Path(path)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append ".npz" to a name
            np.savez(f, mean=self.mean, components=self.components, scale=self.scale, reference=self.reference,
                     method=self.method, alpha=self.alpha, bandwidth=self.bandwidth,
                     n_permutations=self.n_permutations, min_batch=self.min_batch, seed=self.seed,
                     model_sha256=str(model_sha256))
        return path

    @classmethod
    def load(cls, path, model_sha256: str = "") -> "DriftMonitor":
        """Read a monitor written by `save`; with `model_sha256`, refuse one saved for another model file."""
        check_file(path, "Drift reference", hint="Export the model with `medkit export --drift-images` to write one.")
        try:
            with np.load(path, allow_pickle=False) as f:
                arrays = {k: f[k] for k in ("mean", "components", "scale", "reference")}
                settings = dict(method=str(f["method"]), alpha=float(f["alpha"]), bandwidth=float(f["bandwidth"]),
                                n_permutations=int(f["n_permutations"]), min_batch=int(f["min_batch"]),
                                seed=int(f["seed"]))
                saved_for = str(f["model_sha256"]) if "model_sha256" in f.files else ""
        except BAD_REFERENCE as exc:
            raise DataError(f"{path} is not a drift reference written by DriftMonitor.save ({exc}). Re-export the "
                            "model with `medkit export` to write a new one.") from exc
        check_saved_for(path, saved_for, model_sha256, "reference",
                        "Re-export, or save a new one with medkit.deploy.save_reference(model, images).")
        return cls(**arrays, **settings)

    def __repr__(self) -> str:
        return (f"DriftMonitor(method={self.method!r}, alpha={self.alpha}, components={len(self.components)}, "
                f"reference={len(self.reference)}, min_batch={self.min_batch})")


def sample_batches(images, n_batches: int, batch_size: int, *, scanner=None, seed: int = 0) -> list[np.ndarray]:
    """Draw `n_batches` random batches of uint8 images (without replacement within a batch), through `scanner` if given.

    `scanner` is a `medkit.data.sites.Scanner` (or its name in `medkit.data.sites.SCANNERS`): the simulated
    acquisition change whose arrival the monitor should notice.
    """
    images = np.asarray(images)
    if batch_size > len(images):
        raise DataError(f"batch_size {batch_size} is larger than the {len(images)} images to draw from.")
    if isinstance(scanner, str):
        scanner = SCANNERS[scanner]
    rng = np.random.default_rng(seed)
    batches = []
    for i in range(int(n_batches)):
        batch = images[rng.choice(len(images), batch_size, replace=False)]
        batches.append(batch if scanner is None else scanner(batch, seed=seed + i))
    return batches


def alarm_rates(monitor: DriftMonitor, clean, shifted) -> dict:
    """Test every clean and every shifted batch of embeddings; return the false-alarm and detection rates."""
    clean_p = [monitor.test(e, seed=monitor.seed + i).p_value for i, e in enumerate(clean)]
    shifted_p = [monitor.test(e, seed=monitor.seed + i).p_value for i, e in enumerate(shifted)]
    return {"false_alarm_rate": float(np.mean(np.array(clean_p) < monitor.alpha)),
            "detection_rate": float(np.mean(np.array(shifted_p) < monitor.alpha)),
            "n_clean": len(clean_p), "n_shifted": len(shifted_p), "alpha": monitor.alpha,
            "clean_p": clean_p, "shifted_p": shifted_p}
