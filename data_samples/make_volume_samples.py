"""Rebuild lesson 11's volume samples from the full files in ../shared/data (run from the repository root).

    python data_samples/make_volume_samples.py [--source ../shared/data]

- adrenalmnist3d_32.npz: AdrenalMNIST3D at 64^3 averaged over 2 x 2 x 2 blocks to 32^3 (uint8, rounded), the
  official train / val / test splits and labels unchanged.
- brain_mri/{T1,T2,FLAIR}_2mm.nii.gz: the three co-registered 1 mm sequences averaged over 2 x 2 x 2 blocks
  (2 mm voxels, uint8, rounded); the affine is scaled and shifted so each new voxel centre is the centre of its block.

Block means are exact for a factor of two, so the script needs numpy and nibabel only, and rebuilds the same bytes.
"""

import argparse
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np

HERE = Path(__file__).resolve().parent
SEQUENCES = ("T1", "T2", "FLAIR")


def block_mean(array: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Average `array` over 2-wide blocks along `axes` (an odd trailing voxel is dropped)."""
    array = array.astype(np.float32)
    for axis in axes:
        n = array.shape[axis] // 2 * 2
        array = np.take(array, np.arange(n), axis=axis)
        array = 0.5 * (np.take(array, np.arange(0, n, 2), axis=axis) + np.take(array, np.arange(1, n, 2), axis=axis))
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


def make_adrenal(source: Path) -> Path:
    full = np.load(source / "adrenalmnist3d_64.npz")
    out = {}
    for split in ("train", "val", "test"):
        out[f"{split}_images"] = block_mean(full[f"{split}_images"], (1, 2, 3))
        out[f"{split}_labels"] = full[f"{split}_labels"].astype(np.uint8)
    path = HERE / "adrenalmnist3d_32.npz"
    np.savez_compressed(path, **out)
    return path


def make_brain(source: Path) -> list[Path]:
    paths = []
    for name in SEQUENCES:
        image = nib.load(source / "brain_mri" / f"{name}.nii.gz")
        data = block_mean(np.asarray(image.dataobj), (0, 1, 2))
        scale = np.diag([2.0, 2.0, 2.0, 1.0])
        scale[:3, 3] = 0.5  # new voxel 0 is the centre of old voxels 0 and 1
        small = nib.Nifti1Image(data, image.affine @ scale)
        small.header.set_xyzt_units("mm", "sec")
        small.header["descrip"] = b"medkit sample: 2x2x2 block mean of the 1 mm file"
        path = HERE / "brain_mri" / f"{name}_2mm.nii.gz"
        path.parent.mkdir(exist_ok=True)
        nib.save(small, path)
        paths.append(path)
    shutil.copyfile(source / "brain_mri" / "LICENSE-MIT.txt", HERE / "brain_mri" / "LICENSE-MIT.txt")
    return paths


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=HERE.parent.parent / "shared" / "data")
    args = parser.parse_args()
    for path in [make_adrenal(args.source), *make_brain(args.source)]:
        print(f"{path.relative_to(HERE)}: {path.stat().st_size / 1e6:.2f} MB")
