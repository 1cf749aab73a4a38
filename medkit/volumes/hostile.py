"""Broken volume files for lesson 11 and its tests: each one a mistake real exports make, each refused clearly."""

import gzip
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

from .io import Volume, check_volume_size, load_dicom_series, load_nifti, save_nifti, write_dicom_series

__all__ = ["hostile_inputs"]


def _edit(path: Path, **changes) -> None:
    ds = pydicom.dcmread(path)
    for key, value in changes.items():
        setattr(ds, key, value)
    ds.save_as(path, enforce_file_format=True)


def hostile_inputs(volume: Volume, folder, min_size: int = 16) -> dict:
    """Write broken copies of `volume` under `folder`; return {what is wrong: a call that must raise MedkitError}.

    `volume` should be small (a few dozen slices): every DICOM case writes one series.
    """
    folder = Path(folder)
    shutil.rmtree(folder, ignore_errors=True)
    cases = {}

    folder.mkdir(parents=True)
    four_d = folder / "four_d.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([volume.array] * 2, axis=-1), volume.affine), four_d)
    cases["4-D NIfTI where 3-D is expected"] = lambda: load_nifti(four_d)

    header = folder / "broken_header.nii"
    save_nifti(volume, header)
    raw = bytearray(header.read_bytes())
    raw[0:4] = (123).to_bytes(4, "little")  # sizeof_hdr must be 348
    header.write_bytes(bytes(raw))
    cases["NIfTI with a broken header"] = lambda: load_nifti(header)

    zero = folder / "zero_pixdim.nii"
    image = nib.Nifti1Image(volume.array, None)
    image.header["pixdim"][1:4] = (volume.spacing[0], 0.0, volume.spacing[2])
    nib.save(image, zero)
    cases["NIfTI with a zero voxel size"] = lambda: load_nifti(zero)

    truncated = folder / "truncated.nii"
    save_nifti(volume, truncated)
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    cases["truncated NIfTI"] = lambda: load_nifti(truncated)

    flipped = folder / "flipped_bit.nii.gz"
    raw = bytearray(gzip.compress(nib.Nifti1Image(volume.array, volume.affine).to_bytes(), mtime=0))
    raw[len(raw) // 2] ^= 0x10  # one bit in the deflate stream: without the CRC, a few voxels silently change
    flipped.write_bytes(bytes(raw))
    cases["gzipped NIfTI with one flipped bit"] = lambda: load_nifti(flipped)

    def header_edit(name: str, **fields) -> Path:
        path = folder / name
        save_nifti(volume, path)
        raw = bytearray(path.read_bytes())
        header = np.frombuffer(raw[:348], dtype=nib.Nifti1Header.template_dtype).copy()
        for key, value in fields.items():
            header[key] = value
        raw[:348] = header.tobytes()
        path.write_bytes(bytes(raw))
        return path

    huge = header_edit("huge.nii", dim=[3, 30000, 30000, 30000, 1, 1, 1, 1])
    cases["NIfTI claiming 30000^3 voxels"] = lambda: load_nifti(huge)
    negative = header_edit("negative.nii", dim=[3, volume.shape[0], -volume.shape[1], volume.shape[2], 1, 1, 1, 1])
    cases["NIfTI with a negative dimension"] = lambda: load_nifti(negative)

    rgb = folder / "rgb.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(volume.shape, [("R", "u1"), ("G", "u1"), ("B", "u1")]), volume.affine), rgb)
    cases["NIfTI with RGB voxels"] = lambda: load_nifti(rgb)

    def series(name: str) -> list[Path]:
        return write_dicom_series(volume, folder / name)

    missing = series("missing_slice")
    missing[len(missing) // 2].unlink()
    cases["DICOM series with a missing slice"] = lambda: load_dicom_series(folder / "missing_slice")

    duplicated = series("duplicated_slice")
    shutil.copyfile(duplicated[3], duplicated[3].with_name("copy_of_" + duplicated[3].name))
    cases["DICOM series with a duplicated slice"] = lambda: load_dicom_series(folder / "duplicated_slice")

    mixed = series("mixed_spacing")
    for path in mixed[: len(mixed) // 2]:
        _edit(path, PixelSpacing=[f"{volume.spacing[0] * 1.5:.6g}", f"{volume.spacing[1] * 1.5:.6g}"])
    cases["DICOM series with mixed pixel spacing"] = lambda: load_dicom_series(folder / "mixed_spacing")

    uneven = series("uneven_slices")
    for path in uneven[len(uneven) // 2:]:  # the second half shifted by a third of a slice: two spacings
        ds = pydicom.dcmread(path)
        normal = np.cross(np.array(ds.ImageOrientationPatient[:3], float), np.array(ds.ImageOrientationPatient[3:], float))
        position = np.array(ds.ImagePositionPatient, float) + normal * volume.spacing[2] / 3
        _edit(path, ImagePositionPatient=[f"{v:.6f}" for v in position])
    cases["DICOM series with uneven slice spacing"] = lambda: load_dicom_series(folder / "uneven_slices")

    sheared = series("sixty_degrees")
    for path in sheared:  # the column direction turned 30 degrees towards the row direction
        ds = pydicom.dcmread(path)
        row = np.array(ds.ImageOrientationPatient[:3], float)
        column = np.array(ds.ImageOrientationPatient[3:], float)
        _edit(path, ImageOrientationPatient=[f"{v:.6f}" for v in (*row, *(0.5 * row + np.sqrt(0.75) * column))])
    cases["DICOM series with rows and columns at 60 degrees"] = lambda: load_dicom_series(folder / "sixty_degrees")

    tilted = series("gantry_tilt")
    for path in tilted:  # each slice 0.7 mm further along its columns than the last, as a tilted CT gantry gives
        ds = pydicom.dcmread(path)
        k = int(ds.InstanceNumber) - 1
        column = np.array(ds.ImageOrientationPatient[3:], float)
        _edit(path, ImagePositionPatient=[f"{v:.6f}" for v in np.array(ds.ImagePositionPatient, float) + 0.7 * k * column])
    cases["DICOM series with gantry tilt, read with tilt='refuse'"] = \
        lambda: load_dicom_series(folder / "gantry_tilt", tilt="refuse")

    tiny = np.zeros((min_size // 2,) * 3, dtype=np.float32)
    cases["volume too small for the network"] = lambda: check_volume_size(tiny, min_size)
    return cases
