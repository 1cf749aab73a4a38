"""The retraining gate: the paired patient bootstrap on saved probability vectors (better, worse, equal within
noise, and the same candidates with their scores shuffled), then `medkit compare` on real tiny fits."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medkit.base.errors import DataError
from medkit.evaluation.compare import paired_auc_difference, weighted_aucs


def _cohort(seed=0, n_patients=150):
    """Return (labels, patients, current model's probabilities): 1-3 images a patient, one label a patient."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, n_patients)
    patients = np.repeat(np.arange(n_patients), sizes)
    labels = np.repeat(rng.integers(0, 2, n_patients), sizes)
    truth = labels + np.repeat(rng.normal(0, 0.6, n_patients), sizes)  # a patient's films look alike
    return labels, patients, truth + rng.normal(0, 0.6, len(labels))


def _probs(score):
    p = 1 / (1 + np.exp(-score))
    return np.column_stack([1 - p, p])


@pytest.fixture(scope="module")
def cohort():
    labels, patients, current = _cohort()
    rng = np.random.default_rng(1)
    candidates = {"better": current + 1.2 * (labels - 0.5) + rng.normal(0, 0.2, len(labels)),
                  "worse": current + rng.normal(0, 1.5, len(labels)),
                  "equal": current + rng.normal(0, 0.02, len(labels))}  # the same model, retrained to within noise
    return labels, patients, current, candidates


def test_weighted_auc_is_sklearns_with_sample_weights():
    labels, _, score = _cohort(3)
    weights = np.random.default_rng(0).integers(0, 3, (4, len(labels))).astype(float)
    expected = [roc_auc_score(labels, np.round(score, 1), sample_weight=w) for w in weights]  # rounded: ties too
    assert np.allclose(weighted_aucs(labels, np.round(score, 1), weights), expected)


@pytest.mark.parametrize("kind, verdict", [("better", "superior"), ("worse", "inferior"), ("equal", "non-inferior")])
def test_verdicts_on_three_candidates(cohort, kind, verdict):
    labels, patients, current, candidates = cohort
    result = paired_auc_difference(labels, _probs(current), _probs(candidates[kind]), patients, n_boot=1000)
    assert result.verdict == verdict, str(result)
    assert result.promotes == (verdict != "inferior")
    low, high = result.difference.low, result.difference.high
    assert low <= result.difference.estimate <= high
    if kind == "equal":  # within noise: 0 inside the interval, and the interval inside the margin
        assert low < 0 < high and low > -result.margin and result.p_difference > 0.05
    else:
        assert result.p_difference < 0.01
    assert result.n_patients == 150 and result.n_images == len(labels)


@pytest.mark.parametrize("kind", ["better", "equal"])
def test_a_candidate_with_shuffled_scores_is_kept(cohort, kind):
    labels, patients, current, candidates = cohort
    shuffled = np.random.default_rng(2).permutation(candidates[kind])
    result = paired_auc_difference(labels, _probs(current), _probs(shuffled), patients, n_boot=500)
    assert result.verdict == "inferior" and not result.promotes


def test_resampling_patients_widens_the_interval_of_repeated_films():
    """Five identical films a patient are one patient's evidence, not five: the interval must not shrink with them."""
    labels, patients, current = _cohort(4, n_patients=80)
    candidate = current + np.random.default_rng(5).normal(0, 0.5, len(labels))
    repeat = np.repeat(np.arange(len(labels)), 5)
    by_patient = paired_auc_difference(labels[repeat], _probs(current[repeat]), _probs(candidate[repeat]),
                                       patients[repeat], n_boot=1000)
    by_image = paired_auc_difference(labels[repeat], _probs(current[repeat]), _probs(candidate[repeat]),
                                     np.arange(len(repeat)), n_boot=1000)
    assert by_patient.difference.width > 1.8 * by_image.difference.width


def test_bad_inputs_are_refused():
    labels, patients, current = _cohort(6, n_patients=40)
    with pytest.raises(DataError, match="margin"):
        paired_auc_difference(labels, _probs(current), _probs(current), patients, margin=-0.01)
    with pytest.raises(DataError, match="patient"):
        paired_auc_difference(labels, _probs(current), _probs(current), patients[:-1])
    one = np.where(labels == 1, 0, np.arange(len(labels)) + 1)  # every positive image is one patient
    with pytest.raises(DataError, match="at least 2 patients"):
        paired_auc_difference(labels, _probs(current), _probs(current), one)
    three = np.column_stack([_probs(current), np.zeros(len(labels))]) / 1.0
    with pytest.raises(DataError):
        paired_auc_difference(labels, three, _probs(current), patients)


# --- `medkit compare` on real tiny fits ---------------------------------------------------------

FIT = ["--epochs", "1", "--image-size", "48", "--quiet", "--batch-size", "32", "--freeze", "all", "--no-audit"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """(home folder, second site, {current, untrained}): two real `medkit fit` runs (a few seconds each)."""
    from folders import kermany_folder

    from medkit.cli import main

    root = tmp_path_factory.mktemp("compare")
    home = kermany_folder(root / "home", n_patients=24)
    site = kermany_folder(root / "site", n_patients=12, seed=5, start=100)
    cks = {}
    runs = {"current": ["--seed", "0", "--epochs", "4"],
            "untrained": ["--seed", "2", "--lr", "1e-9", "--head-lr", "1e-9"]}  # a head that never moved
    for name, extra in runs.items():
        cks[name] = root / name
        assert main(["fit", "--data", str(home), "--out", str(cks[name]), *FIT, *extra]) == 0
    return home, site, cks


def test_compare_promotes_an_equal_candidate_and_keeps_an_untrained_one(fitted, tmp_path, capsys):
    """The same weights under another name are equal, within no noise at all: PROMOTE; a head never trained: KEEP."""
    import json
    import shutil

    from medkit.cli import main
    from medkit.core.checkpoint import read_config
    from medkit.deploy import ModelCard

    home, site, cks = fitted
    capsys.readouterr()
    argv = ["compare", "--json", "--current", str(cks["current"]), "--data", str(home), "--data-external", str(site),
            "--n-boot", "300"]
    same = tmp_path / "retrained"
    shutil.copytree(cks["current"], same)
    code = main([*argv, "--candidate", str(same), "--record"])
    good = json.loads(capsys.readouterr().out)
    assert [p["kind"] for p in good["parts"]] == ["locked", "external"]
    locked, external = good["parts"]
    assert locked["part"] == "test" and external["part"] == "all" and external["n"] == 48
    assert all(p["verdict"] == "non-inferior" and p["difference"] == 0 for p in good["parts"]), good["parts"]
    assert good["decision"] == "PROMOTE" and code == 0
    code = main([*argv, "--candidate", str(cks["untrained"])])
    bad = json.loads(capsys.readouterr().out)
    assert bad["decision"] == "KEEP" and code == 1
    assert any(p["difference"] < -0.1 and p["verdict"] == "inferior" for p in bad["parts"]), bad["parts"]
    # the PROMOTE was recorded on the candidate, and its model card shows it with its numbers
    assert read_config(same)["comparisons"][-1]["decision"] == "PROMOTE"
    assert "comparisons" not in read_config(cks["current"])
    card = ModelCard.from_checkpoint(same, intended_use="teaching").to_markdown()
    assert "## Retraining gate" in card and "**PROMOTE**" in card and f"{locked['auc_candidate']:.3g}" in card


def test_compare_refuses_locked_images_a_checkpoint_trained_on(fitted, tmp_path):
    from medkit.fit.compare import compare_checkpoints

    home, _, cks = fitted
    rows = ["path,label,patient"] + [f"{p},{p.parent.name},{p.stem.split('_')[0][:7]}"
                                     for p in sorted(home.rglob("*.png"))]
    every = tmp_path / "every.csv"  # another path to the same images: the training images among them
    every.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match="locked images are in the current checkpoint's training"):
        compare_checkpoints(cks["current"], cks["untrained"], every, n_boot=100)


def test_compare_refuses_images_without_patients(fitted, tmp_path):
    import shutil

    from medkit.fit.compare import compare_checkpoints

    _, site, cks = fitted
    for i, png in enumerate(sorted(site.rglob("*.png"))):
        (tmp_path / "anon" / png.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, tmp_path / "anon" / png.parent.name / f"film{i}.png")
    with pytest.raises(DataError, match="no patient keys"):
        compare_checkpoints(cks["current"], cks["untrained"], tmp_path / "anon", n_boot=100)


def test_checkpoints_of_other_classes_are_not_compared():
    from medkit.base.errors import ConfigError
    from medkit.fit.compare import _check_comparable

    normal = {"classes": ["NORMAL", "PNEUMONIA"]}
    with pytest.raises(ConfigError, match="different classes"):
        _check_comparable({"current": normal, "candidate": {"classes": ["PNEUMONIA", "NORMAL"]}})
    with pytest.raises(ConfigError, match="two"):
        _check_comparable({"current": {"classes": list("abc")}, "candidate": {"classes": list("abc")}})
    with pytest.raises(ConfigError, match="multi-label"):
        _check_comparable({"current": normal, "candidate": {**normal, "task": "multilabel"}})
