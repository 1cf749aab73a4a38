"""A CSV of image paths and labels, with optional `patient` and `site` columns for group-aware splits.

    path,label,patient,site
    images/p001_a.png,pneumonia,p001,hospital_a

Relative paths are relative to the CSV's folder (or `root`). Every cell is read as text, so patient
"007" and "7" stay two patients. Labels are stripped of surrounding spaces ("Pneumonia " is "Pneumonia");
labels that differ only by case ("pneumonia", "Pneumonia") are refused rather than guessed at.
Integer labels are class indices; soft or fractional labels (0.7) are refused, never truncated.
Missing files, empty labels and empty group ids are errors that name the lines; nothing is dropped silently.
"""

import re
from pathlib import Path

import numpy as np

from ..base.errors import DataError
from ..base.paths import check_file
from .dataset import ImageDataset
from .decoded import load_images
from .images import check_on_error
from .pixels import DEFAULT_VALUE_RANGE

__all__ = ["from_csv", "read_table"]

_INTEGER = re.compile(r"^[+-]?\d+(\.0*)?$")  # "1" and "1.0" (pandas writes ints as floats beside gaps)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _rows(where: list, limit: int = 5) -> str:
    shown = ", ".join(str(w) for w in where[:limit])
    return shown + (f" ... ({len(where)} in all)" if len(where) > limit else "")


def read_table(path):
    """Return a CSV as a pandas DataFrame of stripped strings ('' for an empty cell), with a clear error."""
    import pandas as pd

    path = check_file(path, "CSV file", allow_empty=True)  # pandas names an empty CSV itself
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except Exception as exc:
        raise DataError(f"{path} is not a readable CSV ({type(exc).__name__}: {exc}).") from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table.apply(lambda column: column.str.strip())


def _labels(path, raw: list, classes) -> tuple[np.ndarray, list]:
    """Return (label indices, class names) from the label column's text."""
    if all(_INTEGER.match(v) for v in raw):  # integer labels are label indices already
        labels = np.asarray([int(float(v)) for v in raw], dtype=np.int64)
        classes = [str(c) for c in classes] if classes else [str(i) for i in range(max(0, int(labels.max())) + 1)]
        bad = [f"line {i + 2}: {v}" for i, v in enumerate(labels) if not 0 <= v < len(classes)]
        if bad:
            raise DataError(f"{path}: label(s) out of range for classes {classes}: {_rows(bad)}. Labels are "
                            "0..K-1, or class names.")
        return labels, classes
    soft = [f"line {i + 2}: {v}" for i, v in enumerate(raw) if _NUMBER.match(v) and not _INTEGER.match(v)]
    if soft:
        raise DataError(f"{path}: non-integer label(s) {_rows(soft)}. medkit trains on one class per image; soft or "
                        "fractional labels are refused rather than truncated. Threshold them into classes first.")
    names = sorted(set(raw))
    by_case = {}
    for name in names:
        by_case.setdefault(name.casefold(), []).append(name)
    clashes = [spellings for spellings in by_case.values() if len(spellings) > 1]
    if clashes:
        raise DataError(f"{path}: labels {clashes[0]} differ only by case ({len(clashes)} such group(s)). medkit does "
                        "not guess whether they are one class; spell each class one way in the CSV.")
    classes = [str(c) for c in classes] if classes else names
    index = {c: i for i, c in enumerate(classes)}
    unknown = [f"line {i + 2}: {v!r}" for i, v in enumerate(raw) if v not in index]
    if unknown:
        raise DataError(f"{path}: label(s) not among classes {classes}: {_rows(unknown)}.")
    return np.asarray([index[v] for v in raw], dtype=np.int64), classes


def _group_column(path, table, group_column, notes) -> str | None:
    """Return the column that groups the images: the one asked for (complete), else patient, else site."""
    if group_column is not None:
        if group_column not in table.columns:
            raise DataError(f"{path} has no group column {group_column!r}; it has {list(table.columns)}.")
        empty = (table.index[table[group_column] == ""] + 2).tolist()
        if empty:
            raise DataError(f"{path}: empty {group_column!r} on line(s) {_rows(empty)}. A group-aware split needs an "
                            f"id on every line: fill them in (a unique id per image if unknown), or do not group.")
        return group_column
    for column in ("patient", "site"):
        if column in table.columns:
            empty = int((table[column] == "").sum())
            if not empty:
                return column
            notes.append(f"the {column!r} column is empty on {empty} line(s); images are not grouped by it")
    return None


def from_csv(path, root=None, *, path_column: str = "path", label_column: str = "label", classes=None,
             group_column: str | None = None, image_size: int | None = None, channels: int | None = None,
             on_error: str = "raise", name: str | None = None, cache: bool = False,
             value_range=DEFAULT_VALUE_RANGE) -> ImageDataset:
    """Load the images a CSV lists as an ImageDataset; `groups` comes from `patient` (else `site`).

    Args:
        path: the CSV file.
        root: folder that relative paths start from (default: the CSV's folder).
        path_column, label_column: column names.
        classes: label names in order; default: sorted unique labels (integers 0..K-1 are kept as they are).
        group_column: column giving the group of each image (every line must have one); default "patient"
            if present and complete, else "site" if present and complete, else no groups.
        image_size, channels, on_error, cache, value_range: as in `from_folder`.
    """
    check_on_error(on_error)
    path = Path(path)
    table = read_table(path)
    missing_cols = [c for c in (path_column, label_column) if c not in table.columns]
    if missing_cols:
        raise DataError(f"{path} has no column(s) {missing_cols}; it has {list(table.columns)}. "
                        f"Pass path_column= and label_column= to name yours.")
    if table.empty:
        raise DataError(f"{path} lists no images.")
    root = Path(root) if root is not None else path.parent
    for column, what in ((label_column, "label"), (path_column, "path")):
        empty = (table.index[table[column] == ""] + 2).tolist()  # +2: header line, 1-based
        if empty:
            raise DataError(f"{path}: empty {what} on line(s) {_rows(empty)}. Every image needs a {what}.")
    files = [Path(p) if Path(p).is_absolute() else root / p for p in table[path_column]]
    missing = [f"line {i + 2}: {f}" for i, f in enumerate(files) if not f.is_file()]
    if missing:
        raise DataError(f"{path} names {len(missing)} missing file(s): {_rows(missing, 3)}. "
                        "Fix the paths (relative ones start at the CSV's folder or root=).")
    labels, classes = _labels(path, table[label_column].tolist(), classes)
    notes = []
    group_column = _group_column(path, table, group_column, notes)
    groups = table[group_column].to_numpy(dtype=str) if group_column else None
    images, kept, skipped = load_images(files, image_size=image_size, channels=channels, on_error=on_error,
                                        source=str(path), notes=notes, cache=cache, value_range=value_range)
    meta = {"source": str(path), "paths": [str(files[i]) for i in kept], "skipped": skipped, "notes": notes,
            "group_column": group_column, "group_kind": group_column}
    for column in ("patient", "site"):  # kept so a lesson can split by either
        if column in table.columns:
            meta[column] = table[column].to_numpy(dtype=str)[kept].tolist()
    return ImageDataset(images, labels[kept], classes, None if groups is None else groups[kept],
                        name=name or path.stem, meta=meta)
