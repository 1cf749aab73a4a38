"""The bundled AdrenalMNIST3D sample (lesson 11): 3-D adrenal gland shapes from CT, normal vs hyperplasia.

`data_samples/adrenalmnist3d_32.npz` holds the official MedMNIST+ splits at 32^3 (2 x 2 x 2 block means of the
64^3 release; `data_samples/make_volume_samples.py` rebuilds it). Licence CC BY 4.0: cite MedMNIST v2.
"""

import numpy as np
import torch

from ..base.errors import DataError
from ..base.paths import check_file
from ..data.medmnist import sample_path
from ..data.splits import subsample

__all__ = ["ADRENAL_SAMPLE", "ADRENAL_CLASSES", "adrenal3d"]

ADRENAL_SAMPLE = "adrenalmnist3d_32.npz"
ADRENAL_CLASSES = ("normal", "hyperplasia")


def _to_float(images: np.ndarray, size: int) -> torch.Tensor:
    """Return uint8 volumes (N, D, H, W) as float32 (N, 1, size, size, size) in [0, 1], converted 64 at a time."""
    out = torch.empty((len(images), 1, size, size, size), dtype=torch.float32)
    for start in range(0, len(images), 64):  # a float copy of a whole split at 32^3 is 4x its bytes; not needed
        chunk = torch.from_numpy(images[start:start + 64]).float().div_(255).unsqueeze(1)
        if chunk.shape[-1] != size:
            chunk = torch.nn.functional.interpolate(chunk, size=(size,) * 3, mode="trilinear", align_corners=False)
        out[start:start + len(chunk)] = chunk
    return out


def adrenal3d(size: int = 32, n_train: int | None = None, seed: int = 0, path=None) -> dict:
    """Return {"train", "val", "test"}: (X float32 (N, 1, size, size, size) in [0, 1], y int64 (N,)).

    Args:
        size: side of the returned volumes; other than 32 they are resampled trilinearly.
        n_train: a stratified subset of the training split (None: all 1188 volumes); val and test stay whole.
        seed: which subset.
        path: another MedMNIST 3-D `.npz` (e.g. the 64^3 release) instead of the bundled sample.
    """
    path = check_file(path or sample_path(ADRENAL_SAMPLE), "Data file")
    with np.load(path) as npz:
        missing = [f"{s}_{k}" for s in ("train", "val", "test") for k in ("images", "labels") if f"{s}_{k}" not in npz]
        if missing:
            raise DataError(f"{path} is not a MedMNIST 3-D file: it lacks {', '.join(missing)}.")
        out = {}
        for split in ("train", "val", "test"):
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"].reshape(-1).astype(np.int64)
            if images.ndim != 4:
                raise DataError(f"{path}: {split}_images has shape {images.shape}; a 3-D set stores (N, D, H, W).")
            keep = subsample(labels, n_train, seed) if split == "train" else np.arange(len(labels))
            out[split] = (_to_float(images[keep], int(size)), torch.from_numpy(labels[keep]))
    return out
