"""The drift monitor: few false alarms on clean batches, alarms on shifted ones, clear refusals."""

import numpy as np
import pytest

from medkit.base.errors import DataError, UnknownNameError
from medkit.deploy import DriftMonitor, alarm_rates, sample_batches


def _embeddings(n, shift=0.0, seed=0, dim=40):
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 8))  # embeddings live near a low-dimensional subspace, as real ones do
    mixing = np.random.default_rng(123).normal(size=(8, dim))
    X = latent @ mixing + 0.3 * rng.normal(size=(n, dim))
    X[:, :8] += shift
    return X


@pytest.mark.parametrize("method", ["mmd", "ks"])
def test_clean_batches_rarely_alarm_and_shifted_batches_do(method):
    monitor = DriftMonitor.fit(_embeddings(400), n_components=8, method=method, n_permutations=200)
    clean = [_embeddings(32, seed=100 + i) for i in range(30)]
    shifted = [_embeddings(32, shift=0.8, seed=200 + i) for i in range(30)]
    rates = alarm_rates(monitor, clean, shifted)
    assert rates["false_alarm_rate"] <= 0.15  # alpha = 0.05; 30 seeded batches
    assert rates["detection_rate"] >= 0.9
    assert rates["n_clean"] == rates["n_shifted"] == 30


def test_p_value_is_a_permutation_p_value():
    monitor = DriftMonitor.fit(_embeddings(300), n_components=8, n_permutations=99)
    result = monitor.test(_embeddings(40, shift=3.0, seed=5))
    assert result.alarm and result.p_value == pytest.approx(1 / 100)  # nothing in the null beats a huge shift
    assert 0 < monitor.test(_embeddings(40, seed=6)).p_value <= 1


def test_save_and_load_give_the_same_test(tmp_path):
    monitor = DriftMonitor.fit(_embeddings(300), n_components=8, alpha=0.01, min_batch=12)
    loaded = DriftMonitor.load(monitor.save(tmp_path / "ref.npz"))
    batch = _embeddings(20, shift=0.3, seed=9)
    assert loaded.test(batch) == monitor.test(batch)
    assert (loaded.alpha, loaded.min_batch, loaded.method) == (0.01, 12, "mmd")


def test_bad_inputs_are_refused(tmp_path):
    monitor = DriftMonitor.fit(_embeddings(300), n_components=8)
    with pytest.raises(DataError, match="batch of 5 images is too small"):
        monitor.test(_embeddings(5))
    with pytest.raises(DataError, match=r"\(N, 40\)"):
        monitor.test(np.zeros((20, 12)))
    with pytest.raises(DataError, match="too few"):
        DriftMonitor.fit(_embeddings(10), n_components=8)
    with pytest.raises(DataError, match="Unknown drift test"):
        DriftMonitor.fit(_embeddings(300), method="chi2")
    (tmp_path / "bad.npz").write_bytes(b"not an npz")
    with pytest.raises(DataError, match="not a drift reference"):
        DriftMonitor.load(tmp_path / "bad.npz")


def test_sample_batches_through_a_scanner(pneumonia):
    images = pneumonia["test"].images
    clean = sample_batches(images, 3, 16, seed=1)
    shifted = sample_batches(images, 3, 16, scanner="soft_low_dose", seed=1)
    assert [b.shape for b in clean] == [(16, 28, 28)] * 3 and clean[0].dtype == np.uint8
    assert not np.array_equal(clean[0], shifted[0])  # same images, other scanner
    assert np.array_equal(clean[0], sample_batches(images, 1, 16, seed=1)[0])  # seeded
    with pytest.raises(DataError, match="larger than"):
        sample_batches(images[:4], 1, 16)
    with pytest.raises((DataError, UnknownNameError, KeyError)):
        sample_batches(images, 1, 4, scanner="no_such_scanner")
