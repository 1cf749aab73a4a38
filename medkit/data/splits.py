"""Seeded splits: stratified by label, or grouped so no patient or site lands in two splits."""

import numpy as np
from sklearn.model_selection import train_test_split

from ..base.errors import DataError

__all__ = ["stratified_split", "subsample", "group_split", "train_val_test_split", "split_dataset", "carve", "check_no_leakage",
           "check_trainable", "carve_index", "VAL_SIZE", "TEST_SIZE"]

VAL_SIZE, TEST_SIZE = 0.1, 0.2  # what every carve holds out of a source by default: test first, then val


def stratified_split(labels, test_size, seed: int = 0):
    """Return (keep_index, held_out_index), stratified by label; `test_size` is a count or a fraction."""
    labels = np.asarray(labels)
    index = np.arange(len(labels))
    try:
        return train_test_split(index, test_size=test_size, stratify=labels, random_state=seed)
    except ValueError as exc:
        raise DataError(f"Cannot split {len(labels)} images stratified by label with test_size={test_size}: {exc}") from exc


def subsample(labels, n: int | None, seed: int = 0, groups=None) -> np.ndarray:
    """Return the indices of a stratified random subset of `n` items (all of them when n is None or too big).

    With `groups`, whole groups (patients) are drawn, class by class in proportion, until each class
    reaches its share; the subset then holds about `n` images and never part of a patient.
    """
    labels = np.asarray(labels)
    if n is None or n >= len(labels):
        return np.arange(len(labels))
    if groups is None:
        keep, _ = stratified_split(labels, test_size=len(labels) - int(n), seed=seed)
        return np.sort(keep)
    return _subsample_groups(labels, np.asarray(groups), int(n), seed)


def _subsample_groups(labels, groups, n, seed):
    if len(groups) != len(labels):
        raise DataError(f"{len(groups)} group ids for {len(labels)} labels; they must match one to one.")
    names, group_index = np.unique(groups, return_inverse=True)
    # a group counts towards its most common label (patients are almost always single-class)
    majority = np.asarray([np.bincount(labels[group_index == g]).argmax() for g in range(len(names))])
    sizes = np.bincount(group_index, minlength=len(names))
    rng = np.random.default_rng(seed)
    chosen = []
    for label, count in zip(*np.unique(labels, return_counts=True)):
        share, taken = max(1, round(n * count / len(labels))), 0
        for g in rng.permutation(np.flatnonzero(majority == label)):
            if taken >= share:
                break
            chosen.append(g)
            taken += sizes[g]
    return np.flatnonzero(np.isin(group_index, chosen))


def _fraction(test_size, n: int) -> float:
    frac = test_size / n if isinstance(test_size, (int, np.integer)) and test_size >= 1 else float(test_size)
    if not 0 < frac < 1:
        raise DataError(f"test_size must be a fraction in (0, 1) or a count in [1, {n - 1}], got {test_size}.")
    return frac


def group_split(groups, test_size=0.2, seed: int = 0, labels=None):
    """Return (keep_index, held_out_index) with no group (patient, site) on both sides.

    With `labels`, the split is also stratified as far as the groups allow (scikit-learn's
    StratifiedGroupKFold, one fold held out); sizes are then approximate, because groups are never cut.
    Introduced in lesson 01, used by lesson 05.
    """
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    groups = np.asarray(groups)
    n = len(groups)
    if labels is not None and len(labels) != n:
        raise DataError(f"{len(labels)} labels for {n} group ids; they must match one to one.")
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise DataError(f"A group-aware split needs at least 2 groups; got {n_groups} among {n} images.")
    frac = _fraction(test_size, n)
    index = np.arange(n)
    if labels is None:
        keep, held = next(GroupShuffleSplit(n_splits=1, test_size=frac, random_state=seed).split(index, groups=groups))
    else:
        n_splits = int(min(n_groups, max(2, round(1 / frac))))
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        try:
            keep, held = next(folds.split(index, np.asarray(labels), groups))
        except ValueError as exc:  # e.g. one image per class: scikit-learn's "n_splits=2 cannot be greater..."
            counts = dict(zip(*np.unique(np.asarray(labels), return_counts=True)))
            raise DataError(f"Cannot hold out {test_size} of {n} images ({n_groups} groups) by group and label: "
                            f"images per label {counts}. Each class needs several images (patients) to give some "
                            f"to every part; add images or bring your own val/test parts. ({exc})") from exc
    return np.sort(keep), np.sort(held)


def train_val_test_split(labels, val_size=0.15, test_size=0.15, seed: int = 0, groups=None) -> dict:
    """Return {"train", "val", "test"} index arrays: stratified by label, and group-aware when `groups` is given."""
    labels = np.asarray(labels)
    n = len(labels)
    test_frac, val_frac = _fraction(test_size, n), _fraction(val_size, n)
    if test_frac + val_frac >= 1:
        raise DataError(f"val_size + test_size must leave images to train on; got {val_size} + {test_size}.")
    if groups is None:
        rest, test = stratified_split(labels, test_frac, seed)
        train, val = stratified_split(labels[rest], val_frac / (1 - test_frac), seed)
        return {"train": np.sort(rest[train]), "val": np.sort(rest[val]), "test": np.sort(test)}
    groups = np.asarray(groups)
    rest, test = group_split(groups, test_frac, seed, labels)
    train, val = group_split(groups[rest], val_frac / (1 - test_frac), seed, labels[rest])
    return {"train": rest[train], "val": rest[val], "test": test}


def split_dataset(dataset, val_size=0.15, test_size=0.15, seed: int = 0, by_group: bool = False) -> dict:
    """Split an ImageDataset into {"train", "val", "test"} datasets (by its `groups` when by_group=True)."""
    if by_group and dataset.groups is None:
        raise DataError(f"{dataset.name or 'dataset'} has no groups (patient or site ids); a group-aware split "
                        "needs them (from_csv reads a `patient` or `site` column).")
    index = train_val_test_split(dataset.labels, val_size, test_size, seed, dataset.groups if by_group else None)
    return {name: dataset.subset(idx, f"{dataset.name}:{name}") for name, idx in index.items()}


def carve(dataset, size, seed: int, names: tuple[str, str]) -> tuple:
    """Return (rest, carved): `size` images (a count or a fraction) held out of `dataset`, stratified, in file order.

    The one held-out carve of a fixed seed that the lessons' PneumoniaMNIST test part and `medkit fit` share;
    `names` names the two parts.
    """
    keep, out = stratified_split(dataset.labels, test_size=size, seed=seed)
    return dataset.subset(np.sort(keep), names[0]), dataset.subset(np.sort(out), names[1])


def carve_index(labels, size, seed: int, groups=None, count_cap: int | None = None) -> tuple:
    """Return (rest, carved) index arrays: whole groups when `groups` is given, else stratified images in file order.

    The one per-part carve rule behind `load_source` and the multi-label recipe. Grouped carves are also
    stratified as far as the groups allow (`group_split`); `count_cap` caps an image carve at that many.
    """
    if groups is not None:
        return group_split(groups, size, seed, labels)
    if count_cap is not None:  # the MedMNIST rule: PneumoniaMNIST's 624, at most `size` of the images
        size = min(count_cap, int(size * len(labels)))
    keep, out = stratified_split(labels, size, seed)
    return np.sort(keep), np.sort(out)


def check_no_leakage(**groups) -> None:
    """Raise DataError if any group id appears in two of the named splits: check_no_leakage(train=g1, test=g2)."""
    sets = {name: set(np.asarray(g).tolist()) for name, g in groups.items()}
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sets[a] & sets[b]
            if shared:
                raise DataError(f"{len(shared)} group(s) appear in both {a} and {b}, e.g. {sorted(shared)[:3]}: "
                                "images of one patient or site leak across splits. Use group_split().")


def check_trainable(path, splits: dict) -> None:
    """Raise DataError unless train holds two classes or more, labelled 0..K-1, and images are 8 to 1024 px."""
    k = int(max(ds.labels.max() for ds in splits.values())) + 1
    present = np.unique(splits["train"].labels)
    if len(present) < 2:
        raise DataError(f"{path}: the training labels hold a single class ({present.tolist()}); need at least two.")
    if len(present) != k:
        missing = sorted(set(range(k)) - set(present.tolist()))
        raise DataError(f"{path}: labels must be 0..K-1 with every class in train; labels go up to {k - 1} but "
                        f"classes {missing} have no training image. Relabel them consecutively.")
    sizes = {ds.images.shape[1] for ds in splits.values()}
    if not all(8 <= s <= 1024 for s in sizes):
        raise DataError(f"{path}: image sizes {sorted(sizes)} px are outside what medkit fit handles (28 to 224).")
