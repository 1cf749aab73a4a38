"""An image folder with one subfolder per class, the layout of the Kaggle chest X-ray set.

    chest_xray/train/NORMAL/*.jpeg, chest_xray/train/PNEUMONIA/*.jpeg, chest_xray/test/...

Hidden files and folders (`.DS_Store`, macOS `._x.png` AppleDouble files, `.ipynb_checkpoints/`) are
never loaded. Other files that are not images by their extension (README.txt) are left out and counted
in `meta["ignored"]`; files that look like images but cannot be read raise (or, with on_error="skip",
are counted in `meta["skipped"]`). Nothing visible is dropped without a count.

When every file name carries a patient key (`patients.patient_key`: the Kermany names), the dataset's
`groups` are those keys and `meta["group_kind"]` is "patient", so group-aware splits keep patients whole.
"""

import os
import warnings
from pathlib import Path

from ..base.errors import DataError
from ..base.paths import check_dir
from .dataset import ImageDataset
from .decoded import load_images
from .images import DICOM_EXTENSIONS, IMAGE_EXTENSIONS, check_on_error
from .patients import patient_keys, warn_mixed_patients
from .pixels import DEFAULT_VALUE_RANGE

__all__ = ["from_folder", "scan_folder", "is_hidden", "visible_files"]


def _hidden_name(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX"  # macOS zips add __MACOSX/ beside the data


def is_hidden(path, root) -> bool:
    """Return True when `path` or a folder between it and `root` is hidden (a dot name, or __MACOSX)."""
    return any(_hidden_name(part) for part in Path(path).relative_to(root).parts)


def visible_files(folder) -> list:
    """Return the files under `folder`, sorted, leaving out hidden files and anything in hidden folders."""
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _hidden_name(d)]  # never descend into .ipynb_checkpoints/ and the like
        found += [os.path.join(here, f) for f in files if not _hidden_name(f)]
    return [Path(p) for p in sorted(found)]


def scan_folder(root, classes=None) -> tuple[list, list, list, list]:
    """Return (paths, labels, classes, ignored) of a class-per-subfolder tree, checking its layout."""
    root = check_dir(root, "Image folder")
    found = sorted(p.name for p in root.iterdir() if p.is_dir() and not _hidden_name(p.name))
    if not found:
        raise DataError(f"Image folder {root} has no class subfolders. Expected {root}/CLASS_NAME/image files, "
                        "e.g. train/NORMAL and train/PNEUMONIA.")
    if not classes and len(found) == 1:
        raise DataError(f"Image folder {root} has one class subfolder ({found[0]}); a classifier needs at least two, "
                        f"e.g. {root}/NORMAL and {root}/PNEUMONIA. Add the other class, or point at the folder above.")
    classes = list(classes) if classes else found
    missing = [c for c in classes if c not in found]
    if missing:
        raise DataError(f"Image folder {root} has no subfolder for class(es) {missing}; it has {found}.")
    paths, labels, ignored = [], [], []
    for label, name in enumerate(classes):
        files = visible_files(root / name)
        is_image = [p.suffix.lower() in IMAGE_EXTENSIONS | DICOM_EXTENSIONS for p in files]
        images = [p for p, keep in zip(files, is_image) if keep]
        ignored += [p for p, keep in zip(files, is_image) if not keep]
        if not images:
            raise DataError(f"Class folder {root / name} holds no image files "
                            f"({len(files)} other file(s)). Add images or remove the folder.")
        paths += images
        labels += [label] * len(images)
    return paths, labels, classes, ignored


def _check_every_class_kept(root, classes, labels, kept, skipped):
    """Refuse a class whose folder held image files of which none could be read."""
    present = {labels[i] for i in kept}
    for label, name in enumerate(classes):
        if label not in present:
            bad = [p for p in skipped if Path(p).is_relative_to(Path(root) / name)]
            raise DataError(f"Class folder {Path(root) / name} has no readable image: all {len(bad)} image file(s) "
                            f"failed to decode, e.g. {bad[0] if bad else '-'}. Replace them or remove the folder.")


def from_folder(root, split: str | None = None, *, classes=None, image_size: int | None = None,
                channels: int | None = None, on_error: str = "raise", name: str | None = None,
                cache: bool = False, value_range=DEFAULT_VALUE_RANGE) -> ImageDataset:
    """Load an image folder (one subfolder per class) as an ImageDataset.

    Args:
        root: the folder holding class subfolders, or its parent when `split` is given (root/split/CLASS).
        split: e.g. "train" for the Kaggle layout chest_xray/train/NORMAL.
        classes: class names in label order (default: the subfolders, sorted).
        image_size, channels: convert every image (see `stack_images`); by default mixed sizes or
            channel counts are an error naming the files.
        on_error: "raise" or "skip" for unreadable image files.
        cache: reuse (or store) the decoded array in medkit's cache (`decoded.load_images`).
        value_range: (low, high) that float image files were saved in (default 0-1); values outside are refused.
    """
    check_on_error(on_error)
    root = Path(root) / split if split else Path(root)
    paths, labels, classes, ignored = scan_folder(root, classes)
    if ignored:
        warnings.warn(f"{root}: ignored {len(ignored)} non-image file(s), e.g. {ignored[0]}", stacklevel=2)
    notes = []
    images, kept, skipped = load_images(paths, image_size=image_size, channels=channels, on_error=on_error,
                                        source=str(root), notes=notes, cache=cache, value_range=value_range)
    _check_every_class_kept(root, classes, labels, kept, skipped)
    labels = [labels[i] for i in kept]
    kept_paths = [paths[i] for i in kept]
    groups = patient_keys(kept_paths)
    if groups is not None:
        warn_mixed_patients(groups, labels, classes, str(root))
    return ImageDataset(images, labels, classes, groups, name=name or root.name,
                        meta={"source": str(root), "paths": [str(p) for p in kept_paths],
                              "ignored": [str(p) for p in ignored], "skipped": skipped, "notes": notes,
                              "group_kind": None if groups is None else "patient"})
