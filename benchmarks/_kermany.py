"""Load the Kermany chest X-ray training folder for the 224 px benchmarks: decoded once, kept as .npy under /tmp.

A stand-in for `medkit.data.load_source` while it is being built: PIL-decode every JPEG to grey uint8,
patient key from the file name (`personN_...` -> `personN`; `IM-NNNN-MMMM` / `NORMAL2-IM-NNNN-MMMM` -> up
to the last `-`), and the patient-grouped, stratified carve medkit uses (val 10%, test 20%, HELD_OUT_SEED).
"""

import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "chest_xray_224" / "train"
CACHE = Path("/tmp/medkit_bench_kermany224")


def patient_key(name: str) -> str:
    """Return the Kermany patient key of a file name."""
    stem = Path(name).stem
    return stem.split("_")[0] if stem.startswith("person") else stem.rpartition("-")[0]


def decode(root=DEFAULT_DATA, per_class: int | None = None) -> tuple[np.ndarray, np.ndarray, list, float]:
    """Return (images (N, 224, 224) uint8, labels, file names, seconds): every JPEG (or per class) decoded by PIL."""
    from PIL import Image

    start = time.perf_counter()
    paths, labels = [], []
    for label, cls in enumerate(("NORMAL", "PNEUMONIA")):
        found = sorted((Path(root) / cls).glob("*.jpeg"))[:per_class]
        paths += found
        labels += [label] * len(found)
    images = np.stack([np.asarray(Image.open(p).convert("L")) for p in paths])
    return images, np.array(labels), [p.name for p in paths], time.perf_counter() - start


def load(root=DEFAULT_DATA) -> tuple[np.ndarray, np.ndarray, list]:
    """Return (images, labels, file names), decoding only the first time (then a memory-mapped .npy)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "images.npy").exists():
        images, labels, names, _ = decode(root)
        np.save(CACHE / "images.npy", images)
        np.save(CACHE / "labels.npy", labels)
        (CACHE / "names.txt").write_text("\n".join(names))
    return (np.load(CACHE / "images.npy", mmap_mode="r"), np.load(CACHE / "labels.npy"),
            (CACHE / "names.txt").read_text().split("\n"))


def carve(labels, names, val_size=0.1, test_size=0.2) -> dict:
    """Return {"train", "val", "test"} index arrays, patient-disjoint and stratified (medkit's carve)."""
    from medkit.data import HELD_OUT_SEED, train_val_test_split

    groups = np.array([patient_key(n) for n in names])
    return train_val_test_split(labels, val_size, test_size, seed=HELD_OUT_SEED, groups=groups), groups
