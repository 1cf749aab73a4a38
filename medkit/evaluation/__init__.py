"""Validation (lesson 05): point metrics, CV, bootstrap intervals, thresholds, calibration, subgroup metrics.

`adapt` (a new site with a few labels: recalibrate on k images, score on the rest) is imported as a module.
"""

from .calibration import (
    TemperatureScaler,
    expected_calibration_error,
    negative_log_likelihood,
    plot_reliability,
    reliability_curve,
)
from .evaluate import (
    CVResult,
    Interval,
    bootstrap_ci,
    choose_threshold,
    confusion,
    cross_validate,
    cv_splits,
    mean_ci,
    metric_gaps,
    metrics_with_ci,
    plot_confusion,
    plot_roc_pr,
    repeated_single_splits,
    roc_pr,
)
from .fairness import equalized_odds, equalized_odds_difference, group_metrics, subgroup_results
from .metrics import auc, check_probs, classification_metrics, sensitivity_specificity

__all__ = [
    "check_probs", "auc", "sensitivity_specificity", "classification_metrics",
    "cv_splits", "CVResult", "cross_validate", "repeated_single_splits", "Interval", "bootstrap_ci", "metrics_with_ci", "metric_gaps",
    "mean_ci",
    "choose_threshold", "confusion", "roc_pr", "plot_confusion", "plot_roc_pr",
    "reliability_curve", "expected_calibration_error", "plot_reliability", "negative_log_likelihood", "TemperatureScaler",
    "group_metrics", "subgroup_results", "equalized_odds", "equalized_odds_difference",
]
