"""MedMNIST `.npz` files (keys `{split}_images`, `{split}_labels`) and the bundled PneumoniaMNIST sample."""

import os
from pathlib import Path

import numpy as np

from ..base.cache import cache_dir, download
from ..base.errors import DataError, UnknownNameError
from ..base.paths import check_file
from ..base.resources import resource_dir
from .dataset import ImageDataset
from .pixels import DEFAULT_VALUE_RANGE, pixels_to_uint8
from .splits import carve, check_trainable

__all__ = ["samples_dir", "sample_path", "load_npz", "from_medmnist", "available_splits", "pneumonia", "PNEUMONIA_CLASSES",
           "HELD_OUT_SEED", "HELD_OUT_SIZE", "DATASETS", "dataset_path", "dataset_state", "load_splits", "held_out_size",
           "VAL_SEED"]

PNEUMONIA_CLASSES = ["normal", "pneumonia"]
HELD_OUT_SEED = 20240  # fixed, independent of a lesson's SEED, so every lesson tests on the same images
HELD_OUT_SIZE = 624  # the size of the official test split, which is not shipped
VAL_SEED = 20241  # carves a validation part from train when a file has none; fixed like HELD_OUT_SEED

# MedMNIST files on Zenodo: name -> (medmnist flag, size suffix). MedMNIST publishes MD5 checksums.
DATASETS = {"pneumoniamnist": ("pneumoniamnist", ""), "pneumoniamnist_64": ("pneumoniamnist", "_64"),
            "pneumoniamnist_128": ("pneumoniamnist", "_128"), "pneumoniamnist_224": ("pneumoniamnist", "_224"),
            "chestmnist": ("chestmnist", ""), "dermamnist": ("dermamnist", ""), "bloodmnist": ("bloodmnist", ""),
            "breastmnist": ("breastmnist", ""), "organamnist": ("organamnist", "")}


def _dataset_entry(name: str) -> tuple[str, str, str]:
    """Return (url, md5, filename) of a MedMNIST file, from the medmnist package's own table."""
    if name not in DATASETS:
        raise UnknownNameError(f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)}.")
    from medmnist import INFO

    flag, size = DATASETS[name]
    info = INFO[flag]
    return info[f"url{size}"], info[f"MD5{size}"], f"{flag}{size}.npz"


def dataset_path(name: str) -> Path:
    """Return the cached path of a MedMNIST file, downloading it (online) or raising OfflineError."""
    url, md5, filename = _dataset_entry(name)
    return download(url, cache_dir() / "data" / filename, md5, algorithm="md5", fetch_hint=f"medkit fetch --data {name}")


def dataset_state(name: str) -> str:
    """Return 'cached', or 'not cached' for a dataset name."""
    _, _, filename = _dataset_entry(name)
    return "cached" if (cache_dir() / "data" / filename).exists() else "not cached"


def samples_dir() -> Path:
    """Return the folder of bundled sample data ($MEDKIT_SAMPLES, else the checkout's or the wheel's data_samples/)."""
    return Path(os.environ.get("MEDKIT_SAMPLES") or resource_dir("data_samples"))


def sample_path(name: str) -> Path:
    """Return the path of a bundled sample file, with a clear error if it is missing."""
    path = samples_dir() / name
    if not path.exists():
        raise DataError(f"Sample file {path} is missing. Re-clone the repository or restore data_samples/{name}.")
    return path


def available_splits(path) -> list[str]:
    """Return the splits an npz file holds (those with both images and labels)."""
    with _open_npz(path) as npz:
        return sorted(k[: -len("_images")] for k in npz.files if k.endswith("_images") and
                      k.replace("_images", "_labels") in npz.files)


def _existing(path) -> Path:
    return check_file(path, "Data file", hint="Check the path, or run `medkit fetch --data NAME` online.")


def _open_npz(path):
    """Open an npz archive without unpickling, or raise a DataError saying what the file is instead."""
    path = _existing(path)
    try:
        npz = np.load(path, allow_pickle=False)  # never unpickle: a pickle in a data file can run code
    except Exception as exc:
        raise DataError(f"{path} is not a readable .npz file ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds a single array, not an .npz archive of named splits "
                        "(train_images, train_labels, ...). Save it with numpy.savez.")
    return npz


def load_npz(path, split: str = "train", classes=None, name: str | None = None,
             value_range=DEFAULT_VALUE_RANGE) -> ImageDataset:
    """Load one split of a MedMNIST-format npz file as an ImageDataset; float images must lie in `value_range`."""
    path = Path(path)
    with _open_npz(path) as npz:
        keys = (f"{split}_images", f"{split}_labels")
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise DataError(f"{path} has no {missing} (it holds {sorted(npz.files)}). A MedMNIST file needs "
                            "`{split}_images` and `{split}_labels` for each split.")
        try:
            images, labels = npz[keys[0]], npz[keys[1]]
        except ValueError as exc:  # object arrays need pickle, which is refused
            raise DataError(f"{path}: {keys[0]} or {keys[1]} is an object array, which would need unpickling; medkit "
                            "loads .npz files with allow_pickle=False. Save plain numeric arrays (uint8 images, "
                            "integer labels).") from exc
        except Exception as exc:
            raise DataError(f"{path} is damaged ({type(exc).__name__}: {exc}). Re-download or rebuild it.") from exc
    images = _images_uint8(images, f"{path}: {split}_images", value_range)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if len(images) != len(labels):
        raise DataError(f"{path}: {split}_images holds {len(images)} images but {split}_labels {len(labels)} labels; "
                        "they must match one to one. The file is inconsistent: re-download or rebuild it.")
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3)):
        raise DataError(f"{path}: {split}_images has shape {images.shape}; expected (N, H, W) or (N, H, W, 3).")
    return ImageDataset(images, labels, list(classes or []), name=name or f"{path.stem}:{split}",
                        meta={"source": str(path), "split": split})


def _images_uint8(images: np.ndarray, what: str, value_range) -> np.ndarray:
    """Return images as uint8: floats through the one pixel rule (inside `value_range`), integers only in 0-255."""
    if images.dtype == np.uint8:
        return images
    if images.dtype.kind == "f":
        return pixels_to_uint8(images, value_range=value_range, what=what)
    if images.dtype.kind not in "iub":
        raise DataError(f"{what}: dtype {images.dtype} is not an image type; save uint8 (or float 0-1) images.")
    low, high = int(images.min()), int(images.max())
    if low < 0 or high > 255:
        raise DataError(f"{what}: {images.dtype} values in [{low}, {high}] do not fit 0-255. Scale them to uint8 "
                        "yourself by their bit depth (4095 for 12-bit, 65535 for 16-bit) or save 0-1 floats; "
                        "medkit does not guess a depth from the values.")
    return images.astype(np.uint8)


def from_medmnist(name: str = "pneumoniamnist", split: str = "train", size: int = 28) -> ImageDataset:
    """Return one split of a MedMNIST dataset at `size` px (28, 64, 128, 224), from medkit's cache or downloaded.

    Offline and not cached, this raises OfflineError; `medkit fetch --data NAME` caches it beforehand.
    The bundled PneumoniaMNIST sample needs no download: use `pneumonia()`.
    """
    key = name if size == 28 else f"{name}_{int(size)}"
    from medmnist import INFO

    labels = INFO.get(name, {}).get("label", {})
    classes = [labels[k] for k in sorted(labels, key=int)] if labels else None
    return load_npz(dataset_path(key), split, classes, name=f"{key}:{split}")


def pneumonia(path=None, held_out: int = HELD_OUT_SIZE) -> dict:
    """Return PneumoniaMNIST as {"train", "val", "test"}: `test` is a fixed stratified held-out part of train.

    The official test split is not shipped, so lessons test on `held_out` images carved from the
    official train split with a fixed seed; the official val split stays the validation set.
    """
    path = path or sample_path("pneumoniamnist_28_trainval.npz")
    train = load_npz(path, "train", PNEUMONIA_CLASSES, name="pneumonia:train")
    val = load_npz(path, "val", PNEUMONIA_CLASSES, name="pneumonia:val")
    train, test = carve(train, held_out, HELD_OUT_SEED, ("pneumonia:train", "pneumonia:test"))
    return {"train": train, "val": val, "test": test}


def held_out_size(n_train: int) -> int:
    """Return how many images to hold out of a train split: PneumoniaMNIST's 624, at most a fifth of it."""
    return min(HELD_OUT_SIZE, n_train // 5)


def load_splits(path, classes=None) -> tuple[dict, dict]:
    """Return ({"train", "val", "test"} datasets, {split: where it came from}) for a MedMNIST-format file."""
    path = Path(path)
    have = set(available_splits(path))
    if "train" not in have:
        raise DataError(f"{path} has no train split (needs `train_images` and `train_labels`; it has splits "
                        f"{sorted(have) or 'none'}). Pass a MedMNIST-format .npz file.")
    train = load_npz(path, "train", classes)
    splits, source = {"train": train}, {"train": "train"}
    if "test" in have:
        splits["test"], source["test"] = load_npz(path, "test", classes), "test"
    else:
        size = held_out_size(len(train))
        splits["train"], splits["test"] = carve(train, size, HELD_OUT_SEED, (f"{path.stem}:test:train", f"{path.stem}:test"))
        source["test"] = f"{size} images carved from train (stratified, seed {HELD_OUT_SEED}); never trained or tuned on"
        source["train"] = "train minus the carved test"
    if "val" in have:
        splits["val"], source["val"] = load_npz(path, "val", classes), "val"
    else:
        size = max(2, len(splits["train"]) // 8)
        splits["train"], splits["val"] = carve(splits["train"], size, VAL_SEED, (f"{path.stem}:val:train", f"{path.stem}:val"))
        source["val"] = f"{size} images carved from train (stratified, seed {VAL_SEED})"
        source["train"] += " minus the carved val"
    check_trainable(path, splits)
    return splits, source
