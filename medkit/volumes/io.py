"""Volumes from files (lesson 11): NIfTI through nibabel, DICOM series through pydicom, into one `Volume`.

A `Volume` is an array in voxel order plus the 4 x 4 affine that maps voxel indices (i, j, k) to world millimetres
in NIfTI's RAS+ frame (x grows towards the patient's Right, y Anterior, z Superior). Spacing and orientation are
read off the affine, never stored beside it, so they cannot disagree with it. `orientation` names where each voxel
axis points, as nibabel's `aff2axcodes` does: "RAS" means i runs towards the Right, j Anterior, k Superior.
DICOM stores LPS+ (x towards the Left, y Posterior), so the series reader and writer flip x and y.
"""

import gzip
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.atomic import write_bytes
from ..base.errors import ConfigError, DataError
from ..base.paths import check_dir, check_file
from ..data.dicom_checks import dicom_number
from .dicom_geometry import check_orthogonal, direction_cosines, gantry_tilt, numbers, untilt
from .nifti_checks import head_bytes, header_of, nifti_bytes, spatial_unit_mm

__all__ = ["Volume", "load_nifti", "save_nifti", "load_dicom_series", "write_dicom_series", "check_volume_size"]

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_STORAGE = {"MR": "1.2.840.10008.5.1.4.1.1.4", "CT": "1.2.840.10008.5.1.4.1.1.2"}  # MR / CT Image Storage
_PLANES = {"S": "axial", "I": "axial", "A": "coronal", "P": "coronal", "R": "sagittal", "L": "sagittal"}


@dataclass
class Volume:
    """A 3-D image: `array` (I, J, K) float32 and the `affine` from voxel (i, j, k) to world mm (RAS+)."""

    array: np.ndarray
    affine: np.ndarray
    source: str = ""  # where it came from, for messages

    def __post_init__(self):
        self.array = np.asarray(self.array, dtype=np.float32)
        self.affine = np.asarray(self.affine, dtype=np.float64)
        if self.array.ndim != 3:
            raise DataError(f"A Volume is 3-D; {self.source or 'the array'} has shape {self.array.shape}.")
        if self.affine.shape != (4, 4) or not np.isfinite(self.affine).all() or \
                abs(np.linalg.det(self.affine[:3, :3])) < 1e-12:
            raise DataError(f"{self.source or 'The volume'} has no usable affine (voxel-to-world matrix): it must be "
                            f"a finite, invertible 4 x 4 matrix; got\n{self.affine}")

    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def spacing(self) -> tuple:
        """Voxel size in mm along i, j, k (the lengths of the affine's columns)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))

    @property
    def orientation(self) -> str:
        """Where each voxel axis points, as nibabel writes it: "RAS" means i to the Right, j Anterior, k Superior."""
        import nibabel as nib

        return "".join(nib.aff2axcodes(self.affine))

    def plane(self, axis: int) -> str:
        """Return the anatomical plane of a slice taken across `axis` ("axial" when the axis points S or I)."""
        return _PLANES[self.orientation[axis]]

    def canonical(self) -> "Volume":
        """Return the same volume with its axes flipped and permuted to RAS (the closest canonical orientation)."""
        import nibabel as nib

        image = nib.as_closest_canonical(nib.Nifti1Image(self.array, self.affine))
        return Volume(np.asarray(image.dataobj), image.affine, self.source)

    def __repr__(self) -> str:
        spacing = " x ".join(f"{s:.3g}" for s in self.spacing)
        return f"Volume({' x '.join(map(str, self.shape))} voxels, {spacing} mm, {self.orientation}, {self.source!r})"


def _as_3d(array: np.ndarray, source: str) -> np.ndarray:
    if array.ndim == 4 and array.shape[3] == 1:
        return array[..., 0]  # a 3-D image stored with a singleton time axis
    if array.ndim == 4:
        raise DataError(f"{source} is 4-D {array.shape}: {array.shape[3]} volumes (a time series, diffusion "
                        f"directions or channels) where one 3-D volume is expected. Pick one, e.g. "
                        f"Volume(array[..., 0], affine), or split it with nibabel.four_to_three.")
    if array.ndim != 3:
        raise DataError(f"{source} has {array.ndim} dimension(s) {array.shape}; a volume needs 3.")
    return array


def load_nifti(path) -> Volume:
    """Read a NIfTI-1/2 file (.nii or .nii.gz) into a Volume in mm, with the header's scaling applied.

    Refused with a DataError, before any voxel array is allocated: a missing or unreadable file, a broken header
    (wrong size or magic, zero or non-finite voxel sizes, non-positive dimensions, a singular affine), a header that
    claims more data than the file holds, voxels that are not scalar (RGB, complex), a damaged gzip stream (its CRC
    is checked), and a 4-D file with more than one volume. The affine is converted to mm from the header's unit
    (metres, mm, microns); an unset or unknown unit is taken as mm with a warning.
    """
    import nibabel as nib
    from nibabel.filebasedimages import ImageFileError
    from nibabel.spatialimages import HeaderDataError

    path = check_file(path, "NIfTI file")  # a folder, a FIFO, a loop or /dev/zero named as such, never opened
    problems = _header_problems(path)
    if problems:
        raise DataError(f"{path} has a broken NIfTI header: {problems}. nibabel would guess a fix; medkit refuses, "
                        "because a guessed voxel size or orientation silently changes every measurement. "
                        "Re-export the file, or repair the header with nibabel and check the result.")
    raw = nifti_bytes(path)  # sizes, datatype and gzip integrity checked here
    klass = nib.Nifti2Image if header_of(raw, path).sizeof_hdr == 540 else nib.Nifti1Image
    try:
        image = klass.from_bytes(raw)
        zooms = image.header.get_zooms()[:3]
        array = np.asarray(image.get_fdata(dtype=np.float32))
    except (ImageFileError, HeaderDataError) as exc:
        raise DataError(f"{path} is not a readable NIfTI file: its header is broken ({exc}). Re-export it.") from exc
    except (EOFError, OSError, ValueError) as exc:  # dims that do not fit the data, past the checks above
        raise DataError(f"{path}: the voxel data cannot be read ({type(exc).__name__}: {exc}). The file is truncated "
                        "or its header's dimensions do not match its data; re-export it.") from exc
    if len(zooms) < 3 or not all(np.isfinite(z) and z > 0 for z in zooms):
        raise DataError(f"{path}: the header's voxel sizes (pixdim) are {tuple(map(float, zooms))}; each must be a "
                        "positive number of mm. The header is broken; fix pixdim or re-export the file.")
    if not np.isfinite(array).all():
        raise DataError(f"{path} holds NaN or infinite voxels (scl_slope/scl_inter broken?).")
    array = _as_3d(array, str(path))
    to_mm = np.diag([spatial_unit_mm(image.header, path)] * 3 + [1.0])  # world and voxel sizes both scale
    return Volume(array, to_mm @ image.affine, source=path.name)


def _header_problems(path: Path) -> str:
    """Return nibabel's diagnosis of the header as stored (before nibabel's silent fixes), '' when sound."""
    from nibabel.nifti1 import Nifti1Header
    from nibabel.nifti2 import Nifti2Header

    try:
        block = head_bytes(path)
    except OSError as exc:
        return f"the file cannot be read ({exc})"
    if len(block) < 348:
        return f"the file holds {len(block)} bytes, fewer than a NIfTI header's 348"
    sizes = {int.from_bytes(block[:4], order) for order in ("little", "big")}
    header = Nifti2Header if 540 in sizes else Nifti1Header
    if header is Nifti1Header and 348 not in sizes:
        return f"sizeof_hdr is {min(sizes)}, not 348 (NIfTI-1) or 540 (NIfTI-2): not a NIfTI file, or a damaged one"
    return "; ".join(line for line in header.diagnose_binaryblock(block[:header.template_dtype.itemsize]).splitlines()
                     if line.strip())


def save_nifti(volume: Volume, path) -> Path:
    """Write `volume` as NIfTI-1 (.nii or .nii.gz, by the name), atomically."""
    import nibabel as nib

    image = nib.Nifti1Image(volume.array, volume.affine)
    image.header.set_xyzt_units("mm")
    data = image.to_bytes()
    return write_bytes(path, gzip.compress(data, mtime=0) if str(path).endswith(".gz") else data)


def _files(folder_or_files) -> list[Path]:
    if isinstance(folder_or_files, (str, Path)):
        folder = check_dir(folder_or_files, "DICOM series folder")
        files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    else:
        files = [Path(p) for p in folder_or_files]
    if len(files) < 2:
        raise DataError(f"A DICOM series needs at least 2 slices to give a slice spacing; found {len(files)} file(s) "
                        f"in {folder_or_files}.")
    return files


def _read_slice(path: Path):
    import pydicom
    from pydicom.errors import InvalidDicomError

    check_file(path, "DICOM slice")
    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable DICOM file ({exc}).") from exc
    missing = [k for k in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "Rows", "Columns")
               if k not in ds]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}: without them the slice cannot be placed in a volume.")
    return ds


def _placement(ds, path, warn: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return a slice's unit row/column directions (2 x 3), position (3) and PixelSpacing (2), checked."""
    cosines = direction_cosines(numbers(ds, "ImageOrientationPatient", 6, path), path, warn)
    spacing = numbers(ds, "PixelSpacing", 2, path)
    if not (spacing > 0).all():
        raise DataError(f"{path}: PixelSpacing is {spacing.tolist()} mm; both must be positive. The header is broken; "
                        "re-export the series.")
    return cosines, numbers(ds, "ImagePositionPatient", 3, path), spacing


def load_dicom_series(folder_or_files, tolerance: float = 0.01, tilt: str = "resample") -> Volume:
    """Read one DICOM series (a folder, or a list of files) into a Volume, slices sorted by position.

    Slices are ordered by their position along the slice normal (ImagePositionPatient projected on the cross
    product of ImageOrientationPatient), never by file name or InstanceNumber. The slice spacing comes from the
    positions; orientation vectors are normalised (with a warning when they are not unit length) and must be at
    right angles (within `dicom_geometry.ORTHOGONAL_DEGREES`). Refused with a DataError, naming the files: several
    series mixed, differing orientations, sizes or pixel spacings, duplicated slice positions, missing slices (a gap
    larger than the others), uneven slice spacing beyond `tolerance` (relative), positions off a line.

    Args:
        tilt: what to do when the positions step off the slice normal (gantry tilt, a sheared series):
            "resample" (default) shifts each slice within its plane onto the orthogonal grid, with a warning that
            gives the angle; "refuse" raises a DataError instead.
    """
    if tilt not in ("resample", "refuse"):
        raise ConfigError(f"tilt must be 'resample' or 'refuse'; got {tilt!r}.")
    files = _files(folder_or_files)
    slices = [(path, _read_slice(path)) for path in files]
    first_path, first = slices[0]
    for key in ("SeriesInstanceUID", "Rows", "Columns"):
        values = {str(ds.get(key)) for _, ds in slices}
        if len(values) > 1:
            raise DataError(f"The files mix {len(values)} different {key} values ({sorted(values)[:3]}...): "
                            "one volume needs one series of same-sized slices. Put each series in its own folder.")
    placed = [_placement(ds, path, warn=k == 0) for k, (path, ds) in enumerate(slices)]
    cosines, _, spacing = placed[0]
    check_orthogonal(cosines, first_path)
    for (path, ds), (other, _, pixel) in zip(slices, placed):
        if not np.allclose(other, cosines, atol=1e-4):
            raise DataError(f"{path.name} is oriented {list(ds.ImageOrientationPatient)}, {first_path.name} "
                            f"{list(first.ImageOrientationPatient)}: a series with mixed slice orientations cannot "
                            "be stacked. Split it by orientation.")
        if not np.allclose(pixel, spacing, rtol=1e-4):
            raise DataError(f"Mixed pixel spacing: {path.name} has {pixel.tolist()} mm, "
                            f"{first_path.name} {spacing.tolist()} mm. Resample the slices to one spacing, or load the "
                            "parts as separate volumes.")
    row_dir, col_dir = cosines
    normal = np.cross(row_dir, col_dir)
    normal /= np.linalg.norm(normal)
    positions = np.array([p for _, p, _ in placed])
    order = np.argsort(positions @ normal, kind="stable")
    slices, positions = [slices[i] for i in order], positions[order]
    step = _slice_step(positions @ normal, [path.name for path, _ in slices], tolerance)
    drift, angle = gantry_tilt(positions, normal, float(spacing.min()), [path.name for path, _ in slices])
    if angle and tilt == "refuse":
        raise DataError(f"{_series_name(files)}: the slice positions step {angle:.2f} degrees off the slice normal "
                        "(gantry tilt, or a sheared series): stacked as they are, the voxels would be sheared. Pass "
                        "tilt='resample' to shift each slice onto the orthogonal grid.")
    # (columns, rows, slices): i runs along a row (ImageOrientationPatient[:3]), as ITK and dcm2niix order it
    array = np.stack([_physical(ds, path).T for path, ds in slices], axis=-1)
    affine = np.eye(4)
    affine[:3, 0] = row_dir * spacing[1]  # PixelSpacing is (between rows, between columns)
    affine[:3, 1] = col_dir * spacing[0]
    affine[:3, 2] = (normal + drift) * step  # along the positions' line: off the normal when tilted
    affine[:3, 3] = positions[0]
    if angle:
        array, affine = untilt(array, affine)
        warnings.warn(f"{_series_name(files)}: gantry tilt of {angle:.2f} degrees (the slice positions step off the "
                      f"slice normal); resampled onto the orthogonal grid, now {' x '.join(map(str, array.shape))} "
                      "voxels. Pass tilt='refuse' to be stopped instead.", stacklevel=2)
    return Volume(array, _LPS_TO_RAS @ affine, source=_series_name(files))


def _series_name(files) -> str:
    return f"{Path(files[0]).parent.name}/ ({len(files)} slices)"


def _slice_step(position: np.ndarray, names: list, tolerance: float) -> float:
    """Return the slice spacing along the normal from sorted `position`s; refuse duplicates, gaps, uneven steps."""
    steps = np.diff(position)
    step = float(np.median(steps))
    duplicated = np.flatnonzero(steps < max(1e-3, 1e-3 * abs(step)))
    if len(duplicated):
        i = duplicated[0]
        raise DataError(f"Duplicated slice position {position[i]:.3f} mm: {names[i]} and {names[i + 1]} "
                        f"({len(duplicated)} duplicate(s)). Remove the copies (or split the series: two acquisitions "
                        "in one folder).")
    gaps = np.flatnonzero(steps > 1.5 * step)
    if len(gaps):
        i = gaps[0]
        raise DataError(f"Missing slice(s): {names[i]} and {names[i + 1]} are {steps[i]:.3f} mm apart where the "
                        f"series steps {step:.3f} mm (about {round(steps[i] / step) - 1} slice(s) missing). Find the "
                        "missing files; a volume with a hole has wrong geometry.")
    if np.abs(steps - step).max() > tolerance * step:
        raise DataError(f"Uneven slice spacing: steps from {steps.min():.3f} to {steps.max():.3f} mm (median "
                        f"{step:.3f}). Mixed slice spacing cannot be stacked into one grid; resample each part.")
    return step


def _physical(ds, path) -> np.ndarray:
    try:
        stored = ds.pixel_array.astype(np.float32)
    except Exception as exc:  # pydicom raises many types for missing or undecodable pixel data
        raise DataError(f"{path}: the pixel data cannot be decoded ({type(exc).__name__}: {exc}).") from exc
    slope, intercept = (_rescale(ds, key, default, path) for key, default in (("RescaleSlope", 1.0),
                                                                               ("RescaleIntercept", 0.0)))
    if slope == 0:
        raise DataError(f"{path}: RescaleSlope is 0, which maps every pixel to {intercept}: the header is broken. "
                        "Re-export the series (a slope of 1 is the usual value).")
    physical = stored * np.float32(slope) + np.float32(intercept)
    if not np.isfinite(physical).all():
        raise DataError(f"{path}: RescaleSlope {slope} and RescaleIntercept {intercept} overflow float32 on its "
                        "pixels. The header is broken; re-export the series.")
    return physical


def _rescale(ds, key: str, default: float, path) -> float:
    """Return RescaleSlope or RescaleIntercept as a finite number (absent or empty: `default`)."""
    value = dicom_number(ds, key, path, fix="The header is broken; re-export the series.")
    return default if value is None else value


def write_dicom_series(volume: Volume, folder, modality: str = "MR", series_uid: str | None = None,
                       shuffle_names: bool = False) -> list[Path]:
    """Write `volume` as a DICOM series (one file per k slice, uint16 with slope/intercept), for lessons and tests.

    The columns of the affine must be orthogonal (DICOM slices are stacked along their normal). With
    `shuffle_names`, file names no longer follow slice order, as they often do not in real exports.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    lps = np.linalg.inv(_LPS_TO_RAS) @ volume.affine
    columns = lps[:3, :3] / np.array(volume.spacing)
    if abs(np.dot(columns[:, 0], columns[:, 1])) > 1e-4 or \
            np.dot(np.cross(columns[:, 0], columns[:, 1]), columns[:, 2]) < 1 - 1e-4:
        raise ConfigError("write_dicom_series needs orthogonal, right-handed voxel axes (DICOM stacks slices along "
                          "row x column); reorient the volume first, e.g. volume.canonical().")
    low, high = float(volume.array.min()), float(volume.array.max())
    slope = max((high - low) / 65535.0, 1e-6) if (high - low) > 65535 or low != int(low) or high != int(high) else 1.0
    series_uid = series_uid or generate_uid(entropy_srcs=[volume.source, str(volume.shape)])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n = volume.shape[2]
    names = np.random.default_rng(0).permutation(n) if shuffle_names else np.arange(n)
    paths = []
    for k in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = _STORAGE.get(modality, _STORAGE["MR"])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(k)])
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, generate_uid(entropy_srcs=[series_uid, "study"])
        ds.Modality, ds.InstanceNumber = modality, k + 1
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[0]  # i runs along a row: the columns
        ds.PixelSpacing = [f"{volume.spacing[1]:.6g}", f"{volume.spacing[0]:.6g}"]
        ds.SliceThickness = f"{volume.spacing[2]:.6g}"
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in (*columns[:, 0], *columns[:, 1])]
        ds.ImagePositionPatient = [f"{v:.6f}" for v in (lps @ np.array([0, 0, k, 1.0]))[:3]]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = f"{slope:.10g}", f"{low:.10g}"
        stored = np.rint((volume.array[:, :, k].T - low) / slope).clip(0, 65535).astype("<u2")
        ds.PixelData = stored.tobytes()
        path = folder / f"slice_{names[k]:04d}.dcm"
        paths.append(write_bytes(path, _dicom_bytes(ds)))
    return paths


def _dicom_bytes(ds) -> bytes:
    import io

    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def check_volume_size(volume, min_size: int, what: str = "the network") -> None:
    """Raise ConfigError if any side of `volume` (a Volume or an array, last 3 axes) is below `min_size` voxels."""
    shape = tuple((volume.array if isinstance(volume, Volume) else np.asarray(volume)).shape[-3:])
    if min(shape) < min_size:
        raise ConfigError(f"A volume of {' x '.join(map(str, shape))} voxels is too small for {what}, which needs "
                          f"at least {min_size} per side. Resample it to a finer spacing or a larger grid first.")
