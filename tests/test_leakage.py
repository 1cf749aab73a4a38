"""split_gap: the same model on an image-level and a patient-grouped split, and the patients that leak."""

import numpy as np
import pytest

from medkit.base.errors import DataError
from medkit.methods.leakage import leaked_groups, split_gap


def _patients(n_patients=60, per_patient=3, seed=0):
    """Features that carry a strong per-patient signature and a weak class signal: leakage pays."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_patients)
    identity = rng.normal(0, 1, (n_patients, 8))
    X = np.repeat(identity, per_patient, 0) + rng.normal(0, 0.1, (n_patients * per_patient, 8))
    X[:, 0] += 0.3 * np.repeat(labels, per_patient)
    groups = np.repeat([f"p{i}" for i in range(n_patients)], per_patient)
    return X, np.repeat(labels, per_patient), groups


def test_leaked_groups_counts_test_patients_seen_in_train():
    assert leaked_groups(["a", "a", "b"], ["b", "c", "c"]) == 1
    assert leaked_groups(["a"], ["b"]) == 0


def test_image_level_split_leaks_and_flatters_a_memorising_model():
    from sklearn.neighbors import KNeighborsClassifier

    # 200 patients and five seeds, not 60 and three: sklearn's grouped draws differ between releases (1.7 on Python
    # 3.10 against 1.9), and with 12 test patients one draw's chance-level AUC ranged 0.24-0.85; here both releases
    # give a patient-split mean of 0.47-0.50 against 0.99 for the image split
    X, y, groups = _patients(n_patients=200)
    gap = split_gap(X, y, groups, seeds=(0, 1, 2, 3, 4), fit=lambda a, b: KNeighborsClassifier(1).fit(a, b))
    by_split = gap.groupby("split")
    assert (gap[gap.split == "patient"].leaked_patients == 0).all()
    assert (gap[gap.split == "image"].leaked_patients > 0).all()
    # a 1-NN finds the patient's other image: near-perfect with leakage, near chance without
    assert by_split.auc.mean()["image"] > by_split.auc.mean()["patient"] + 0.3
    assert set(gap.columns) >= {"seed", "split", "auc", "n_train", "n_test", "leaked_images"}


def test_split_gap_default_probe_and_same_numbers_per_seed():
    X, y, groups = _patients(seed=1)
    first, second = split_gap(X, y, groups, seeds=(3,)), split_gap(X, y, groups, seeds=(3,))
    assert first.equals(second)
    assert len(first) == 2 and first.auc.between(0, 1).all()


def test_split_gap_refuses_mismatched_inputs():
    X, y, groups = _patients()
    with pytest.raises(DataError, match="one patient key per image"):
        split_gap(X, y, groups[:-1])
