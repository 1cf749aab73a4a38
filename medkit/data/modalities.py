"""Two more modalities for lesson 10, bundled: breast ultrasound (BreastMNIST) and dermoscopy (ISIC).

Both return the {"train", "val", "test"} dict of `chest_xrays()`, label 1 = malignant, so one pipeline runs on
all three. Every file is checked against `data_samples/SHA256SUMS` before it is read; provenance, licences and
attribution are in `data_samples/README.md`, and `data_samples/make_modality_samples.py` rebuilds the files.
"""

import csv
import warnings

import numpy as np

from ..base.cache import sha256sum
from ..base.checks import check_channels
from ..base.errors import DataError
from .dataset import ImageDataset
from .images import _to_channels, resize_image, stack_images
from .medmnist import HELD_OUT_SEED, load_npz, sample_path, samples_dir
from .splits import stratified_split, subsample

__all__ = ["breast_ultrasound", "dermoscopy", "match_channels", "BREAST_SAMPLE", "DERMOSCOPY_SAMPLE",
           "MALIGNANT_CLASSES", "DERMOSCOPY_HELD_OUT"]

BREAST_SAMPLE = "breastmnist_64.npz"
DERMOSCOPY_SAMPLE = "isic_dermoscopy"  # folder: images/*.jpg and metadata.csv
MALIGNANT_CLASSES = ["benign", "malignant"]  # label 1 = malignant in both modalities (the positive class)
DERMOSCOPY_HELD_OUT = {"val": 100, "test": 150}  # of 550 images, carved stratified with HELD_OUT_SEED
_COLUMNS = ("image", "benign_malignant", "diagnosis", "age_approx", "sex")
_REBUILD = "Restore it (`git checkout data_samples/`, or re-clone / reinstall medkit), or rebuild it with " \
           "`python data_samples/make_modality_samples.py` next to ../shared/data."


def _published_sha256() -> dict:
    path = samples_dir() / "SHA256SUMS"
    if not path.is_file():
        return {}
    return {name.lstrip("*"): digest for digest, name in (line.split(maxsplit=1) for line in
                                                         path.read_text().splitlines() if line.strip())}


def _verified(name: str):
    """Return the path of bundled file `name` after checking it against SHA256SUMS (a DataError if it differs)."""
    try:
        path = sample_path(name)
    except DataError as exc:
        raise DataError(f"{exc} {_REBUILD}") from None
    expected = _published_sha256().get(name)
    if expected is not None and sha256sum(path) != expected:
        raise DataError(f"{path} does not match its sha256 in data_samples/SHA256SUMS: the file is damaged or was "
                        f"edited. {_REBUILD}")
    return path


def _channel_note(have: int, channels: int) -> str:
    if channels == 3:
        return "grey images repeated on 3 channels for an RGB pipeline (no colour is invented)"
    return "RGB images converted to grey (ITU-R 601 luma): the colour, which may carry diagnostic signal, is lost"


def match_channels(images: np.ndarray, channels: int, what: str, *, warn: bool = True) -> np.ndarray:
    """Return uint8 images with `channels` (1 or 3); a conversion between grey and RGB is done and warned, never silent."""
    check_channels(channels)
    have = 1 if images.ndim == 3 else images.shape[-1]
    if have == channels:
        return images
    if warn:
        warnings.warn(f"{what}: {len(images)} {_channel_note(have, channels)}; pass channels={have} to keep them "
                      "as stored.", stacklevel=2)
    return np.stack([_to_channels(image, channels) for image in images])


def _finish(parts: dict, image_size: int, channels: int, n_train, seed: int, what: str) -> dict:
    """Resize, match channels (said once for all parts) and draw the `n_train` subset with `seed`; val and test stay."""
    have = parts["train"].channels
    if channels in (1, 3) and have != channels:
        warnings.warn(f"{what}: {sum(map(len, parts.values()))} {_channel_note(have, channels)}; pass "
                      f"channels={have} to keep them as stored.", stacklevel=3)
    out = {}
    for name, ds in parts.items():
        images = ds.images
        if ds.image_size != (image_size, image_size):
            images = np.stack([resize_image(image, int(image_size)) for image in images])
        images = match_channels(images, channels, f"{what}:{name}", warn=False)
        out[name] = ImageDataset(images, ds.labels, list(MALIGNANT_CLASSES), None, f"{what}:{name}", ds.meta)
    if n_train is not None:
        keep = subsample(out["train"].labels, n_train, seed)
        out["train"] = out["train"].subset(keep)
        out["train"].meta["origin"] = f"{out['train'].meta.get('origin', 'train')}; {len(keep)} images drawn " \
                                      f"stratified with seed {seed}"
    return out


def breast_ultrasound(image_size: int = 64, n_train: int | None = None, seed: int = 0, channels: int = 1) -> dict:
    """Return BreastMNIST (breast ultrasound, 64 px grey) as {"train", "val", "test"}; label 1 = malignant.

    Args:
        image_size: side in pixels (the file holds 64 px; other sizes are resized on load).
        n_train: keep this many training images, stratified, drawn with `seed` (None: all 546).
        seed: draws only the `n_train` subset; val (78) and test (156) are MedMNIST's official splits.
        channels: 1 (grey, as stored) or 3 (the grey value repeated; said with a warning).

    MedMNIST labels 0 = malignant, 1 = normal or benign; they are flipped here so that malignant is positive.
    BUSI (the source) holds 780 images of 600 women and publishes no patient ids: the official split may put one
    woman's images on both sides.
    """
    path = _verified(BREAST_SAMPLE)
    parts = {}
    for split in ("train", "val", "test"):
        ds = load_npz(path, split)
        ds.labels = 1 - ds.labels  # MedMNIST: 0 malignant, 1 normal+benign
        ds.meta["origin"] = f"BreastMNIST official {split} split"
        parts[split] = ds
    return _finish(parts, image_size, channels, n_train, seed, "breast_ultrasound")


def _read_metadata(path) -> list[dict]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} lacks the column(s) {missing} (it has {reader.fieldnames}). {_REBUILD}")
        rows = list(reader)
    bad = [r["image"] for r in rows if r["benign_malignant"] not in MALIGNANT_CLASSES]
    if bad or not rows:
        raise DataError(f"{path}: benign_malignant must be 'benign' or 'malignant'; {len(bad)} row(s) are not "
                        f"(e.g. {bad[:3]}), or the table is empty. {_REBUILD}")
    return rows


def dermoscopy(image_size: int = 128, n_train: int | None = None, seed: int = 0, channels: int = 3) -> dict:
    """Return the bundled ISIC dermoscopy images (550, 128 px RGB) as {"train", "val", "test"}; label 1 = malignant.

    Args:
        image_size: side in pixels (the files are 128; other sizes are resized on load).
        n_train: keep this many training images, stratified, drawn with `seed` (None: all 300).
        seed: draws only the `n_train` subset. Val (100) and test (150) are carved stratified by label with
            `HELD_OUT_SEED`, so every lesson and seed tests on the same images.
        channels: 3 (RGB, as stored: colour matters in dermoscopy) or 1 (grey; said with a warning).

    This subset carries no patient or lesion ids, so the carve cannot be grouped: two images of one lesion could
    land on both sides. `meta` keeps `image`, `diagnosis`, `age_approx` and `sex` per image (empty when unknown).
    """
    table = _verified(f"{DERMOSCOPY_SAMPLE}/metadata.csv")
    rows = _read_metadata(table)
    names = [f"{DERMOSCOPY_SAMPLE}/images/{r['image']}" for r in rows]
    paths = [_verified(name) for name in names]
    try:
        images, _, _ = stack_images(paths, image_size=None, channels=3, on_error="raise", source="dermoscopy")
    except DataError as exc:
        raise DataError(f"{exc} {_REBUILD}") from None
    labels = np.array([MALIGNANT_CLASSES.index(r["benign_malignant"]) for r in rows])
    meta = {key: [r[key] for r in rows] for key in ("image", "diagnosis", "age_approx", "sex")}
    full = ImageDataset(images, labels, list(MALIGNANT_CLASSES), name="dermoscopy", meta=meta)
    rest, test = stratified_split(labels, DERMOSCOPY_HELD_OUT["test"], seed=HELD_OUT_SEED)
    train, val = stratified_split(labels[rest], DERMOSCOPY_HELD_OUT["val"], seed=HELD_OUT_SEED)
    parts = {"train": full.subset(np.sort(rest[train])), "val": full.subset(np.sort(rest[val])),
             "test": full.subset(np.sort(test))}
    for ds in parts.values():
        ds.meta["origin"] = f"{len(ds)} of {len(full)} ISIC images, carved stratified with seed {HELD_OUT_SEED} " \
                            "(no patient ids in this subset)"
    return _finish(parts, image_size, channels, n_train, seed, "dermoscopy")
