"""Reliability, ECE and temperature scaling on known, generated probabilities."""

import numpy as np
import pytest

from medkit.base.errors import DataError, MedkitError
from medkit.evaluation import calibration


def calibrated(n=4000, seed=0):
    """Labels drawn from the probabilities themselves: perfectly calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.random(n)
    return (rng.random(n) < p).astype(int), p


def sharpen(p, t):
    """Make probabilities over- (t < 1) or under-confident (t > 1) by a known temperature."""
    z = np.log(p / (1 - p)) / t
    return 1 / (1 + np.exp(-z))


def test_calibrated_probabilities_have_small_ece():
    y, p = calibrated()
    assert calibration.expected_calibration_error(y, p) < 0.03
    assert calibration.expected_calibration_error(y, sharpen(p, 0.3)) > 0.1


def test_ece_of_a_hand_example():
    y = np.array([1, 1, 0, 0])
    p = np.array([0.9, 0.9, 0.9, 0.9])  # confidence 0.9 everywhere, accuracy 0.5
    assert calibration.expected_calibration_error(y, p) == pytest.approx(0.4)


def test_reliability_curve_counts_every_sample():
    y, p = calibrated(500)
    curve = calibration.reliability_curve(y, p, n_bins=10)
    assert curve["count"].sum() == 500
    assert curve["count"][:5].sum() == 0  # binary top-label confidence is at least 0.5
    assert calibration.reliability_curve([1], [1.0], n_bins=4)["count"].tolist() == [0, 0, 0, 1]


def test_temperature_scaling_recovers_a_known_temperature():
    y, p = calibrated(6000)
    over = sharpen(p, 0.4)
    scaler = calibration.TemperatureScaler().fit(over, y)
    assert scaler.fitted and scaler.temperature == pytest.approx(1 / 0.4, rel=0.1)
    fixed = scaler.transform(over)
    assert fixed.shape == (6000, 2) and np.allclose(fixed.sum(1), 1)
    assert calibration.expected_calibration_error(y, fixed) < calibration.expected_calibration_error(y, over) / 3
    # the ranking, hence the AUC, is unchanged
    assert np.array_equal(np.argsort(fixed[:, 1], kind="stable"), np.argsort(over, kind="stable"))


def test_temperature_scaling_keeps_the_ranking_of_extreme_probabilities():
    from scipy.special import expit
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    p = expit(-35 + 3 * y + rng.normal(0, 3, 400))  # over-confident: most p far below 1e-12, still ranked
    scaled = calibration.TemperatureScaler(temperature=9.0).transform(p)[:, 1]
    assert roc_auc_score(y, scaled) == roc_auc_score(y, p)


def test_temperature_scaling_is_deterministic_and_identity_before_fit():
    y, p = calibrated(300)
    assert calibration.TemperatureScaler().fit(p, y).temperature == calibration.TemperatureScaler().fit(p, y).temperature
    assert np.allclose(calibration.TemperatureScaler().transform(p)[:, 1], p, atol=1e-9)


@pytest.mark.parametrize("probs", [np.array([0.2, 1.3, 0.5]), np.ones((3, 2, 2)) / 2, np.array([0.2, np.nan, 0.5])])
def test_bad_probabilities_raise(probs):
    with pytest.raises(MedkitError):
        calibration.expected_calibration_error([0, 1, 1], probs)
    with pytest.raises(MedkitError):
        calibration.TemperatureScaler().fit(probs, [0, 1, 1])


def test_bad_labels_and_bins_raise():
    with pytest.raises(DataError, match="labels"):
        calibration.expected_calibration_error([0, 2, 1], [0.1, 0.5, 0.9])
    with pytest.raises(DataError, match="3 probability rows for 2 labels"):
        calibration.expected_calibration_error([0, 1], [0.1, 0.5, 0.9])
    with pytest.raises(DataError, match="n_bins"):
        calibration.reliability_curve([0, 1], [0.1, 0.9], n_bins=0)
    with pytest.raises(DataError, match="one label per row"):
        calibration.TemperatureScaler().fit([0.1, 0.5, 0.9], [0, 1])


def test_plot_reliability():
    import matplotlib

    matplotlib.use("Agg")
    y, p = calibrated(200)
    ax = calibration.plot_reliability(y, p, label="toy")
    assert "ECE" in ax.get_legend().get_texts()[0].get_text()


def test_logits_and_binary_decision_values():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 60, 500)  # huge logits: probabilities round to exactly 0 or 1
    y = (rng.random(500) < 1 / (1 + np.exp(-z / 10))).astype(int)  # the truth is z / 10
    scaler = calibration.TemperatureScaler().fit(z, y, logits=True)
    assert scaler.temperature == pytest.approx(10, rel=0.3)
    two_columns = np.stack([np.zeros_like(z), z], axis=1)
    assert np.allclose(scaler.transform(z, logits=True), scaler.transform(two_columns, logits=True))
    before = calibration.negative_log_likelihood(y, z, logits=True)
    after = calibration.negative_log_likelihood(y, z, logits=True, temperature=scaler.temperature)
    assert after < before
    with pytest.raises(DataError, match="finite"):
        scaler.transform(np.array([1.0, np.inf]), logits=True)
    with pytest.raises(DataError, match="one label"):
        calibration.negative_log_likelihood([0, 1, 2], [0.2, 0.5, 0.9])
