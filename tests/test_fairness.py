"""Subgroup metrics and equalized odds, checked against hand counts."""

import numpy as np
import pytest

from medkit.base.errors import DataError, MedkitError
from medkit.evaluation import fairness


@pytest.fixture
def two_sites():
    # site a: sensitivity 3/4, specificity 2/2; site b: sensitivity 1/2, specificity 1/2
    y = np.array([1, 1, 1, 1, 0, 0, 1, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.1, 0.3, 0.9, 0.4, 0.6, 0.2])
    g = np.array(["a"] * 6 + ["b"] * 4)
    return y, p, g


def test_group_metrics_by_hand(two_sites):
    table = fairness.group_metrics(*two_sites, threshold=0.5)
    assert list(table.index) == ["a", "b", "overall"]
    assert table.loc["a", "sensitivity"] == pytest.approx(0.75) and table.loc["a", "specificity"] == 1.0
    assert table.loc["b", "sensitivity"] == 0.5 and table.loc["b", "specificity"] == 0.5
    assert table.loc["a", "n"] == 6 and table.loc["overall", "n"] == 10
    assert table.loc["b", "prevalence"] == 0.5
    assert table.loc["a", "auc"] == pytest.approx(7 / 8)  # 7 of 8 (positive, negative) pairs in order


def test_equalized_odds_by_hand(two_sites):
    eo = fairness.equalized_odds(*two_sites, threshold=0.5)
    assert eo["tpr_difference"] == pytest.approx(0.25)
    assert eo["fpr_difference"] == pytest.approx(0.5)
    assert eo["equalized_odds_difference"] == pytest.approx(0.5)
    assert fairness.equalized_odds_difference(*two_sites) == pytest.approx(0.5)


def test_identical_groups_have_zero_gap(two_sites):
    y, p, _ = two_sites
    yy, pp, gg = np.r_[y, y], np.r_[p, p], np.array(["x"] * 10 + ["y"] * 10)
    assert fairness.equalized_odds_difference(yy, pp, gg) == 0


def test_single_class_group_raises(two_sites):
    y, p, g = two_sites
    y, p, g = np.r_[y, 1, 1], np.r_[p, 0.9, 0.3], np.concatenate([g, ["c", "c"]])  # group c: two positives, no negatives
    with pytest.raises(DataError, match="Group 'c' holds only positives"):
        fairness.group_metrics(y, p, g)
    with pytest.raises(DataError, match="only positives"):
        fairness.equalized_odds_difference(y, p, g)


def test_bad_inputs_raise(two_sites):
    y, p, g = two_sites
    with pytest.raises(MedkitError, match=r"\[0, 1\]"):
        fairness.group_metrics(y, p * 2, g)
    with pytest.raises(DataError, match="one group per sample"):
        fairness.group_metrics(y, p, g[:-1])
    with pytest.raises(DataError, match="binary"):
        fairness.group_metrics(y, np.full((10, 3), 1 / 3), g)
    with pytest.raises(DataError, match="0/1"):
        fairness.equalized_odds(y * 2, p, g)


def test_group_metrics_with_intervals_keep_the_points_and_note_small_groups(two_sites):
    y, p, g = two_sites
    y, p, g = np.r_[y, 1, 1], np.r_[p, 0.9, 0.3], np.concatenate([g, ["c", "c"]])  # group c: positives only
    table = fairness.group_metrics(y, p, g, threshold=0.5, n_boot=50)
    assert table.loc["a", "sensitivity"] == pytest.approx(0.75) and table.loc["a", "n"] == 6
    ci = table.loc["a", "sensitivity_ci"]
    assert ci.estimate == pytest.approx(0.75) and ci.low <= ci.estimate <= ci.high
    assert "2 positives and 2 negatives" in table.loc["c", "note"] and np.isnan(table.loc["c", "specificity"])
    rows = fairness.subgroup_results(y, p, g, n_boot=50)
    assert [r["group"] for r in rows] == ["a", "b", "c"] and rows[0]["sensitivity"] == ci and "note" in rows[2]
