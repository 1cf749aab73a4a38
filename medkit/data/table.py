"""A CSV of image paths and labels, with optional `patient` and `site` columns for group-aware splits.

    path,label,patient,site
    images/p001_a.png,pneumonia,p001,hospital_a

Relative paths are relative to the CSV's folder (or `root`). Missing files and unknown or empty
labels are errors that name the rows; nothing is dropped silently.
"""

from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import ImageDataset
from .images import stack_images

__all__ = ["from_csv"]


def _rows(where: list, limit: int = 5) -> str:
    shown = ", ".join(str(w) for w in where[:limit])
    return shown + (f" ... ({len(where)} in all)" if len(where) > limit else "")


def from_csv(path, root=None, *, path_column: str = "path", label_column: str = "label", classes=None,
             group_column: str | None = None, image_size: int | None = None, channels: int | None = None,
             on_error: str = "raise", name: str | None = None) -> ImageDataset:
    """Load the images a CSV lists as an ImageDataset; `groups` comes from `patient` (else `site`).

    Args:
        path: the CSV file.
        root: folder that relative paths start from (default: the CSV's folder).
        path_column, label_column: column names.
        classes: label names in order; default: sorted unique labels (integers 0..K-1 are kept as they are).
        group_column: column giving the group of each image; default "patient" if present, else "site".
        image_size, channels, on_error: as in `stack_images`.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"CSV file {path} does not exist.")
    try:
        table = pd.read_csv(path)
    except Exception as exc:
        raise DataError(f"{path} is not a readable CSV ({type(exc).__name__}: {exc}).") from exc
    missing_cols = [c for c in (path_column, label_column) if c not in table.columns]
    if missing_cols:
        raise DataError(f"{path} has no column(s) {missing_cols}; it has {list(table.columns)}. "
                        f"Pass path_column= and label_column= to name yours.")
    if table.empty:
        raise DataError(f"{path} lists no images.")
    root = Path(root) if root is not None else path.parent
    empty = (table.index[table[label_column].isna()] + 2).tolist()  # +2: header line, 1-based
    if empty:
        raise DataError(f"{path}: empty label on line(s) {_rows(empty)}. Every image needs a label.")
    files = [Path(p) if Path(p).is_absolute() else root / p for p in table[path_column].astype(str)]
    missing = [f"line {i + 2}: {f}" for i, f in enumerate(files) if not f.is_file()]
    if missing:
        raise DataError(f"{path} names {len(missing)} missing file(s): {_rows(missing, 3)}. "
                        "Fix the paths (relative ones start at the CSV's folder or root=).")
    raw = table[label_column].tolist()
    if all(isinstance(v, (int, np.integer)) for v in raw):  # integer labels are label indices already
        labels = np.asarray(raw, dtype=np.int64)
        classes = [str(c) for c in classes] if classes else [str(i) for i in range(int(labels.max()) + 1)]
        bad = [f"line {i + 2}: {v}" for i, v in enumerate(labels) if not 0 <= v < len(classes)]
        if bad:
            raise DataError(f"{path}: label(s) out of range for classes {classes}: {_rows(bad)}.")
    else:
        classes = [str(c) for c in classes] if classes else sorted({str(v) for v in raw})
        index = {c: i for i, c in enumerate(classes)}
        unknown = [f"line {i + 2}: {v!r}" for i, v in enumerate(raw) if str(v) not in index]
        if unknown:
            raise DataError(f"{path}: label(s) not among classes {classes}: {_rows(unknown)}.")
        labels = np.asarray([index[str(v)] for v in raw], dtype=np.int64)
    if group_column is None:
        group_column = next((c for c in ("patient", "site") if c in table.columns), None)
    elif group_column not in table.columns:
        raise DataError(f"{path} has no group column {group_column!r}; it has {list(table.columns)}.")
    groups = table[group_column].astype(str).to_numpy() if group_column else None
    images, kept, skipped = stack_images(files, image_size=image_size, channels=channels, on_error=on_error,
                                         source=str(path))
    meta = {"source": str(path), "paths": [str(files[i]) for i in kept], "skipped": skipped,
            "group_column": group_column}
    for column in ("patient", "site"):  # kept so a lesson can split by either
        if column in table.columns:
            meta[column] = table[column].astype(str).to_numpy()[kept].tolist()
    return ImageDataset(images, labels[kept], classes, None if groups is None else groups[kept],
                        name=name or path.stem, meta=meta)
