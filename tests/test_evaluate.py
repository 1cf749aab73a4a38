"""Cross-validation, bootstrap intervals and operating points: seeded, correct, and loud on bad input."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from medkit import MedkitError
from medkit.base.errors import DataError
from medkit.evaluation import evaluate


@pytest.fixture
def toy():
    """A learnable 2-feature problem with 4 sites."""
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(60, int), np.ones(90, int)]
    X = rng.normal(size=(150, 2)) + y[:, None] * 1.2
    groups = np.array(["a", "b", "c", "d", "e"] * 30)
    return X, y, groups


def scores(n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(int)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    return y, p


def test_stratified_folds_partition_and_keep_the_class_mix(toy):
    X, y, _ = toy
    folds = evaluate.cv_splits(y, k=5, seed=1)
    test = np.concatenate([t for _, t in folds])
    assert sorted(test.tolist()) == list(range(len(y)))  # every sample tested exactly once
    for train, t in folds:
        assert not set(train) & set(t)
        assert abs(y[t].mean() - y.mean()) < 0.05


def test_group_folds_never_split_a_group(toy):
    X, y, groups = toy
    for train, test in evaluate.cv_splits(y, k=5, groups=groups, seed=0):
        assert not set(groups[train]) & set(groups[test])


def test_cross_validate_is_seeded_and_summarised(toy):
    X, y, groups = toy
    a = evaluate.cross_validate(LogisticRegression(), X, y, k=5, seed=3)
    b = evaluate.cross_validate(LogisticRegression(), X, y, k=5, seed=3)
    c = evaluate.cross_validate(LogisticRegression(), X, y, k=5, seed=4)
    assert a.table.equals(b.table)
    assert not a.table["auc"].equals(c.table["auc"])
    assert len(a.table) == 5 and {"auc", "sensitivity", "specificity"} <= set(a.table.columns)
    assert a.mean("auc") == pytest.approx(a.table["auc"].mean()) and a.std("auc") > 0
    assert 0.7 < a.mean("auc") <= 1
    assert not np.isnan(a.oof_probs).any()
    assert a.summary.loc["auc", "min"] <= a.summary.loc["auc", "mean"] <= a.summary.loc["auc", "max"]
    g = evaluate.cross_validate(LogisticRegression(), X, y, k=5, groups=groups)
    assert sorted(g.table["test_groups"]) == ["a", "b", "c", "d", "e"]


def test_cross_validate_accepts_a_callable(toy):
    X, y, _ = toy

    def fit_predict(X_train, y_train, X_test):
        return LogisticRegression().fit(X_train, y_train).predict_proba(X_test)

    a = evaluate.cross_validate(fit_predict, X, y, k=3)
    b = evaluate.cross_validate(LogisticRegression(), X, y, k=3)
    assert np.allclose(a.table["auc"], b.table["auc"])


def test_repeated_single_splits_spread(toy):
    X, y, _ = toy
    s = evaluate.repeated_single_splits(LogisticRegression(), X, y, n_repeats=8, seed=0)
    assert len(s) == 8 and s.std() > 0
    assert np.array_equal(s, evaluate.repeated_single_splits(LogisticRegression(), X, y, n_repeats=8, seed=0))


def test_repeated_single_splits_by_patient_keep_each_patient_on_one_side(toy):
    X, y, _ = toy
    patients = np.arange(len(y)) // 3
    shared = []

    def fit_predict(X_train, y_train, X_test):  # column 0 carries the patient id, to see who went where
        shared.append(len(set(X_train[:, 0]) & set(X_test[:, 0])))
        return LogisticRegression().fit(X_train[:, 1:], y_train).predict_proba(X_test[:, 1:])

    tagged = np.column_stack([patients, X])
    s = evaluate.repeated_single_splits(fit_predict, tagged, y, n_repeats=5, seed=0, groups=patients)
    assert len(s) == 5 and shared == [0] * 5
    evaluate.repeated_single_splits(fit_predict, tagged, y, n_repeats=5, seed=0)  # by image: patients on both sides
    assert min(shared[5:]) > 0


@pytest.mark.parametrize("bad, match", [
    (dict(k=7), "class 0 has only 6"),
    (dict(k=1), "k >= 2"),
    (dict(k=4, groups=["a", "b", "c"] * 4), "only 3 groups"),
])
def test_bad_folds_raise(bad, match):
    y = np.r_[np.zeros(6, int), np.ones(6, int)]
    with pytest.raises(DataError, match=match):
        evaluate.cv_splits(y, **bad)


def test_bad_model_and_shapes_raise(toy):
    X, y, _ = toy
    with pytest.raises(DataError, match="149 labels"):
        evaluate.cross_validate(LogisticRegression(), X, y[:-1])
    with pytest.raises(DataError, match="scikit-learn estimator or a callable"):
        evaluate.cross_validate("logistic", X, y)
    with pytest.raises(MedkitError, match=r"\[0, 1\]"):
        evaluate.cross_validate(lambda X_train, y_train, X_test: np.full(len(X_test), 2.0), X, y, k=3)
    with pytest.raises(DataError, match="Unknown metric"):
        evaluate.repeated_single_splits(LogisticRegression(), X, y, metric="f1")


def test_single_class_fold_raises():
    y = np.r_[np.zeros(6, int), np.ones(6, int)]
    groups = np.r_[["a"] * 6, ["b"] * 3, ["c"] * 3]  # group a holds only negatives
    with pytest.raises(DataError, match="single class"):
        evaluate.cv_splits(y, k=3, groups=groups)
    with pytest.raises(DataError, match="two classes"):
        evaluate.cv_splits(np.ones(10, int), k=2)


def test_fast_auc_matches_sklearn():
    y, p = scores()
    p = np.round(p, 1)  # many ties
    assert evaluate.mann_whitney_auc(p[y == 1], p[y == 0]) == pytest.approx(roc_auc_score(y, p))


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    y, p = scores()
    ci = evaluate.metrics_with_ci(y, p, threshold=0.5, n_boot=300, seed=0)
    again = evaluate.metrics_with_ci(y, p, threshold=0.5, n_boot=300, seed=0)
    other = evaluate.metrics_with_ci(y, p, threshold=0.5, n_boot=300, seed=1)
    assert ci == again and ci["auc"] != other["auc"]
    for interval in ci.values():
        assert 0 <= interval.low <= interval.estimate <= interval.high <= 1 and interval.width > 0
    assert ci["auc"].estimate == pytest.approx(roc_auc_score(y, p))
    assert ci["sensitivity"].estimate == pytest.approx((p[y == 1] >= 0.5).mean())
    # a bigger sample gives a narrower interval
    y2, p2 = scores(3000)
    assert evaluate.bootstrap_ci(y2, p2, n_boot=300).width < ci["auc"].width


@pytest.mark.parametrize("probs, match", [
    (np.linspace(-0.5, 1.5, 20), r"\[0, 1\]"),
    (np.full((20, 2, 2), 0.5), "shaped"),
    (np.full(19, 0.5), "19 probability rows for 20 labels"),
])
def test_bad_probabilities_raise(probs, match):
    y = np.r_[np.zeros(10, int), np.ones(10, int)]
    with pytest.raises(MedkitError, match=match):
        evaluate.metrics_with_ci(y, probs, n_boot=50)


def test_bootstrap_bad_arguments():
    y, p = scores(40)
    with pytest.raises(DataError, match="Unknown metric"):
        evaluate.bootstrap_ci(y, p, "f1")
    with pytest.raises(DataError, match="at least 2 positives"):
        evaluate.bootstrap_ci(np.r_[np.zeros(10, int), 1], np.linspace(0, 1, 11))
    with pytest.raises(DataError, match="level"):
        evaluate.bootstrap_ci(y, p, level=95)
    with pytest.raises(DataError, match="0/1"):
        evaluate.bootstrap_ci(np.arange(40) % 3, p)


def test_thresholds_meet_their_targets_on_validation():
    y, p = scores(500)
    t_sens = evaluate.choose_threshold(y, p, "sensitivity", target=0.95)
    t_spec = evaluate.choose_threshold(y, p, "specificity", target=0.95)
    assert (p[y == 1] >= t_sens).mean() >= 0.95
    assert (p[y == 0] < t_spec).mean() >= 0.95
    assert t_sens < evaluate.choose_threshold(y, p) < t_spec
    # the highest threshold that meets the target: one step higher would miss it
    higher = np.unique(p)[np.unique(p) > t_sens][0]
    assert (p[y == 1] >= higher).mean() < 0.95
    with pytest.raises(DataError, match="target"):
        evaluate.choose_threshold(y, p, "sensitivity")
    with pytest.raises(DataError, match="Unknown rule"):
        evaluate.choose_threshold(y, p, "f1")
    with pytest.raises(DataError, match="both classes"):
        evaluate.choose_threshold(np.ones(5, int), np.full(5, 0.7))


def test_confusion_counts_and_rates():
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.2, 0.9, 0.4, 0.8, 0.7])
    assert evaluate.confusion(y, p, 0.5).tolist() == [[2, 1], [1, 3]]
    rates = evaluate.confusion(y, p, 0.5, normalize="true")
    assert np.allclose(rates.sum(1), 1) and rates[1, 1] == pytest.approx(0.75)
    with pytest.raises(DataError, match="normalize"):
        evaluate.confusion(y, p, normalize="rows")
    with pytest.raises(DataError, match="binary"):
        evaluate.confusion(y, np.full((7, 3), 1 / 3))


def test_roc_pr_and_plots():
    import matplotlib

    matplotlib.use("Agg")
    y, p = scores()
    curves = evaluate.roc_pr(y, p)
    assert curves["auc"] == pytest.approx(roc_auc_score(y, p))
    assert curves["prevalence"] == pytest.approx(y.mean()) and 0 < curves["average_precision"] <= 1
    axes = evaluate.plot_roc_pr(y, p, label="toy", n_boot=50)
    assert "AUC" in axes[0].get_legend().get_texts()[0].get_text()
    evaluate.plot_confusion(y, p, 0.5)


def test_youden_matches_the_rule_medkit_fit_used():
    """`medkit fit` used argmax(tpr - fpr) on sklearn's default (dropped intermediate) ROC points: same thresholds."""
    from sklearn.metrics import roc_curve

    rng = np.random.default_rng(0)
    for trial in range(200):
        n = int(rng.integers(6, 80))
        y = rng.integers(0, 2, n)
        y[:2] = [0, 1]
        p = np.round(rng.random(n) * 0.5 + 0.4 * y, int(rng.integers(1, 4)))  # rounding makes ties
        fpr, tpr, thr = roc_curve(y, p)
        best = int(np.argmax(tpr - fpr))
        if best == 0:  # a useless model: the old rule returned 1.0, this one just above 1 (nothing positive)
            continue
        assert evaluate.choose_threshold(y, p) == float(np.clip(thr[best], 0.0, 1.0)), trial


def test_sensitivity_specificity_binary_and_macro():
    from medkit.evaluation.metrics import sensitivity_specificity

    y, pred = np.array([0, 0, 1, 1, 1]), np.array([0, 1, 1, 1, 0])
    assert sensitivity_specificity(y, pred) == {"sensitivity": pytest.approx(2 / 3), "specificity": 0.5}
    y3, pred3 = np.array([0, 1, 2, 2]), np.array([0, 2, 2, 1])
    out = sensitivity_specificity(y3, pred3, 3)
    sens = np.mean([(pred3[y3 == c] == c).mean() for c in range(3)])
    spec = np.mean([(pred3[y3 != c] != c).mean() for c in range(3)])
    assert out == {"sensitivity": sens, "specificity": spec}


def test_metric_gaps_of_two_sets():
    y, p = scores()
    y2, p2 = scores(400, seed=3)
    p2 = np.clip(p2 * 0.6 + 0.35, 0, 1)  # a second site: scores squeezed upwards, so specificity falls
    gaps = evaluate.metric_gaps((y, p), (y2, p2), 0.5, n_boot=300)
    own = evaluate.metrics_with_ci(y, p, 0.5, n_boot=300)
    other = evaluate.metrics_with_ci(y2, p2, 0.5, n_boot=300)
    for key, interval in gaps.items():
        assert interval.estimate == pytest.approx(other[key].estimate - own[key].estimate)
        assert interval.low <= interval.estimate <= interval.high
    assert gaps["specificity"].high < 0  # a real drop: the interval excludes no change
    same = evaluate.metric_gaps((y, p), (y, p), 0.5, n_boot=300)
    assert all(i.estimate == 0 and i.contains(0) for i in same.values())
    # the gap's spread comes from both sets: wider than either set's own interval
    assert gaps["auc"].width > max(own["auc"].width, other["auc"].width)


def test_group_bootstrap_draws_whole_patients_and_checks_their_count():
    from medkit.evaluation.evaluate import group_bootstrap

    patients = np.repeat(np.arange(10), 3)  # 3 images per patient
    draws = group_bootstrap(lambda index: np.bincount(patients[index], minlength=10), len(patients), patients,
                            n_boot=50, seed=0)
    assert draws.shape == (50, 10) and (draws % 3 == 0).all() and (draws.sum(1) == 30).all()
    assert not (draws == 3).all()  # resampled, not the original set
    items = group_bootstrap(lambda index: len(np.unique(index)), 30, None, n_boot=50, seed=0)
    assert (items < 30).any()  # image by image: duplicates within a replicate
    with pytest.raises(DataError, match="one group per item"):
        group_bootstrap(len, 30, patients[:-1], n_boot=10)
