"""Stratified and group-aware splits: proportions kept, and no patient or site in two splits."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from medkit.base.errors import DataError
from medkit.data import ImageDataset, check_no_leakage, group_split, split_dataset, train_val_test_split


@settings(max_examples=30, deadline=None)
@given(st.integers(20, 200), st.integers(4, 30), st.integers(0, 1000))
def test_group_split_never_shares_a_group(n, n_groups, seed):
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n)
    labels = rng.integers(0, 2, n)
    if len(np.unique(groups)) < 2:
        return
    keep, held = group_split(groups, 0.25, seed)
    assert len(keep) + len(held) == n and not set(keep) & set(held)
    assert not set(groups[keep]) & set(groups[held])
    index = train_val_test_split(labels, 0.2, 0.2, seed, groups=groups) if len(np.unique(groups)) >= 3 else None
    if index is not None and all(len(v) for v in index.values()):
        check_no_leakage(**{k: groups[v] for k, v in index.items()})
        assert sorted(np.concatenate(list(index.values()))) == list(range(n))


def test_stratified_split_keeps_class_balance(pneumonia):
    ds = pneumonia["train"]
    parts = split_dataset(ds, 0.2, 0.2, seed=0)
    share = {k: v.labels.mean() for k, v in parts.items()}
    assert all(abs(s - ds.labels.mean()) < 0.01 for s in share.values())
    assert sum(len(v) for v in parts.values()) == len(ds)


def test_group_aware_dataset_split():
    labels = np.tile([0, 1], 50)
    patients = np.repeat(np.arange(25), 4)  # 4 images per patient
    ds = ImageDataset(np.zeros((100, 4, 4), np.uint8), labels, groups=patients)
    parts = split_dataset(ds, 0.2, 0.2, seed=1, by_group=True)
    check_no_leakage(**{k: v.groups for k, v in parts.items()})
    # an ordinary split of the same images would leak patients
    plain = split_dataset(ds, 0.2, 0.2, seed=1)
    with pytest.raises(DataError, match="leak"):
        check_no_leakage(**{k: v.groups for k, v in plain.items()})


def test_split_bad_input():
    with pytest.raises(DataError, match="at least 2 groups"):
        group_split(np.zeros(10), 0.2)
    with pytest.raises(DataError, match="has no groups"):
        split_dataset(ImageDataset(np.zeros((10, 4, 4), np.uint8), np.arange(10) % 2), by_group=True)
    with pytest.raises(DataError, match="test_size"):
        group_split(np.arange(10), 1.5)
    with pytest.raises(DataError, match="leave images"):
        train_val_test_split(np.arange(10) % 2, 0.5, 0.5)
    with pytest.raises(DataError, match="labels for"):
        group_split(np.arange(10), 0.2, labels=np.zeros(3))
