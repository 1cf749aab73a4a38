"""The bundled real-resolution chest X-rays: a patient-grouped subset of Kermany et al.'s training images.

`data_samples/chest_xray/train/{NORMAL,PNEUMONIA}/*.jpeg`: 1,303 images (520 normal, 783 pneumonia)
of 805 patients at 128 x 128 grey, the Kaggle layout with the original file names (see
data_samples/README.md for provenance and the CC BY 4.0 attribution). The lessons' accessor
`chest_xrays()` splits it by patient, with a test part that never changes with the lesson's seed.

`data_samples/chest_xray_external/{NORMAL,PNEUMONIA}/*.jpeg`: a second site (lesson 12), 301 images (119 normal,
182 pneumonia) of 203 patients from half of Kermany et al.'s official *test* split, which was collected apart from
the training split, made the same way. `second_site()` returns all of it as one part: it is never trained on.
"""

from pathlib import Path

from ..base.errors import DataError
from .medmnist import HELD_OUT_SEED, sample_path
from .sources import load_source
from .splits import check_no_leakage, subsample

__all__ = ["chest_xrays", "chest_xray_dir", "CHEST_XRAY_SAMPLE", "second_site", "second_site_dir", "SECOND_SITE_SAMPLE"]

CHEST_XRAY_SAMPLE = "chest_xray"  # folder under data_samples/
SECOND_SITE_SAMPLE = "chest_xray_external"  # folder under data_samples/: made by make_second_site_sample.py


def chest_xray_dir():
    """Return the bundled sample's class-folder tree (data_samples/chest_xray/train)."""
    return sample_path(CHEST_XRAY_SAMPLE) / "train"


def chest_xrays(image_size: int = 128, n_train: int | None = None, seed: int = 0, *, channels: int = 1,
                val_size: float = 0.1, test_size: float = 0.2, cache: bool = True, folder=None) -> dict:
    """Return the bundled chest X-rays as patient-grouped, label-stratified {"train", "val", "test"} datasets.

    Args:
        image_size: side in pixels (the files are 128; other sizes are resized on load).
        n_train: keep about this many training images, drawn as whole patients with `seed` (None: all).
        seed: the lesson's seed; it only draws the `n_train` subset. The val and test parts are carved
            with `HELD_OUT_SEED`, so every lesson and seed tests on the same patients, never trained or tuned on.
        channels: 1 (grey, as stored) or 3.
        val_size, test_size: fractions of the images (approximate: patients are never cut).
        cache: reuse the decoded array from medkit's cache (see `sources.load_source`).
        folder: another Kermany-style class-folder tree to use instead of the bundled subset (the `full`
            profile's `DATA_DIR`: the whole `chest_xray/train` folder you downloaded, 5,216 images); None: bundled.

    Every part's `groups` are patient keys; `meta["origin"]` says how the part was made.
    """
    folder = chest_xray_dir() if folder is None else Path(folder).expanduser()
    bundled = folder == chest_xray_dir()
    if not folder.is_dir():
        raise DataError(f"DATA_DIR {folder} is not a folder. Point it at the chest_xray/train folder of Kermany et al.'s "
                        "download (NORMAL/ and PNEUMONIA/ inside), or set it to None for the bundled subset.")
    source = load_source(folder, image_size=image_size, channels=channels, group_by="patient",
                         val_size=val_size, test_size=test_size, seed=HELD_OUT_SEED, on_error="raise", cache=cache)
    splits = source.splits
    for name, ds in splits.items():
        ds.name = f"{CHEST_XRAY_SAMPLE if bundled else folder.name}:{name}"
    if n_train is not None:
        train = splits["train"]
        keep = subsample(train.labels, n_train, seed, groups=train.groups)
        splits["train"] = train.subset(keep)
        splits["train"].meta["origin"] = f"{splits['train'].meta.get('origin', 'train')}; {len(keep)} images " \
                                         f"of whole patients drawn with seed {seed}"
    check_no_leakage(**{name: ds.groups for name, ds in splits.items()})
    return splits



def second_site_dir():
    """Return the bundled second site's class-folder tree (data_samples/chest_xray_external)."""
    return sample_path(SECOND_SITE_SAMPLE)


def second_site(image_size: int = 128, channels: int = 1, cache: bool = True):
    """Return the bundled second site (lesson 12) as one ImageDataset: every image, patient keys as `groups`.

    Half of Kermany et al.'s official test split, collected apart from the training split that `chest_xrays()`
    samples: an external validation set. Never train or tune on it; whatever is chosen on it must be reported as
    chosen on it. `meta["origin"]` says where it comes from.
    """
    source = load_source(second_site_dir(), image_size=image_size, channels=channels, group_by="patient",
                         carve=False, on_error="raise", cache=cache)
    (site,) = source.splits.values()
    site.name = f"{SECOND_SITE_SAMPLE}:all"
    site.meta["origin"] = ("second site: half of Kermany et al.'s official test split (collected apart from the "
                           "training split), every bundled image")
    return site
