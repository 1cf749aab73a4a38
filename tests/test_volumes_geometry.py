"""Volume geometry against independent readers: nibabel for NIfTI; SimpleITK and the DICOM standard's own formula
(PS3.3 C.7.6.2.1.1) for a DICOM series written here with pydicom alone (not through medkit's writer)."""

import contextlib
import gzip
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

import medkit.volumes as vol
from medkit.base.errors import DataError
from medkit.volumes import dicom_geometry

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ROTATION = np.linalg.qr([[0.936, -0.289, 0.201], [0.312, 0.946, -0.087], [-0.165, 0.143, 0.976]])[0]  # oblique
ROW, COLUMN = ROTATION[:, 0], ROTATION[:, 1]


def write_series(folder, stored, orientation, positions, pixel_spacing=(1.25, 0.75)):
    """Write `stored` (columns, rows, slices; uint16) as one slice per file, each placed by its own header."""
    folder.mkdir(parents=True, exist_ok=True)
    series, study = generate_uid(), generate_uid()
    for k, position in enumerate(positions):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
        ds.SeriesInstanceUID, ds.StudyInstanceUID, ds.Modality = series, study, "CT"
        ds.InstanceNumber = len(positions) - k  # reversed on purpose: order must come from the positions
        ds.Rows, ds.Columns = stored.shape[1], stored.shape[0]
        ds.PixelSpacing = [f"{v:.10g}" for v in pixel_spacing]
        ds.ImageOrientationPatient = [f"{v:.10g}" for v in orientation]
        ds.ImagePositionPatient = [f"{v:.10g}" for v in position]
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
        ds.RescaleSlope, ds.RescaleIntercept = "1", "-1024"
        ds.PixelData = np.ascontiguousarray(stored[:, :, k].T.astype("<u2")).tobytes()
        ds.save_as(folder / f"IM{k * 7 % len(positions):03d}", enforce_file_format=True)
    return folder


def standard_world(orientation, position, pixel_spacing, c, r):
    """PS3.3 C.7.6.2.1.1: LPS positions (3 x n) of pixels (columns c, rows r) of a slice, unit direction cosines."""
    x, y = np.asarray(orientation[:3], float), np.asarray(orientation[3:], float)
    x, y = x / np.linalg.norm(x), y / np.linalg.norm(y)
    c, r = np.atleast_1d(c)[None], np.atleast_1d(r)[None]
    return np.asarray(position, float)[:, None] + c * pixel_spacing[1] * x[:, None] + r * pixel_spacing[0] * y[:, None]


def world_of(volume, ijk):
    """LPS mm of voxel indices `ijk` (3 x n) of a medkit Volume."""
    return (np.linalg.inv(LPS_TO_RAS) @ volume.affine @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3]


@contextlib.contextmanager
def no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


@pytest.fixture
def stored():
    return np.random.default_rng(0).integers(0, 4000, (7, 5, 6)).astype(np.uint16)


def oblique_positions(n=6, step=2.5, origin=(-30.0, 12.0, 40.0)):
    normal = np.cross(ROW, COLUMN)
    return [np.array(origin) + k * step * normal for k in range(n)]


# --- NIfTI against nibabel -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("unit, mm", [("mm", 1.0), ("meter", 1000.0), ("micron", 0.001)])
def test_nifti_geometry_matches_nibabel_in_mm(tmp_path, unit, mm):
    affine = np.eye(4)
    affine[:3, :3] = ROTATION @ np.diag([0.9, 1.1, 2.0]) / mm  # the same mm voxels, written in `unit`
    affine[:3, 3] = np.array([-40.0, 12.5, 7.0]) / mm
    image = nib.Nifti1Image(np.arange(60, dtype=np.float32).reshape(3, 4, 5), affine)
    image.header.set_xyzt_units(unit)
    path = tmp_path / "v.nii.gz"
    nib.save(image, path)
    reference = nib.load(path)
    volume = vol.load_nifti(path)
    assert np.allclose(volume.affine[:3], reference.affine[:3] * mm, atol=1e-6 * max(1, mm))
    assert np.allclose(volume.spacing, np.array(reference.header.get_zooms()) * mm, rtol=1e-5)
    assert np.allclose(volume.spacing, (0.9, 1.1, 2.0), rtol=1e-5)
    assert np.array_equal(volume.array, reference.get_fdata())


def test_nifti_without_a_unit_is_read_as_mm_with_a_warning(tmp_path):
    path = tmp_path / "v.nii"
    nib.save(nib.Nifti1Image(np.zeros((3, 4, 5), np.float32), np.diag([2.0, 2.0, 3.0, 1.0])), path)
    with pytest.warns(UserWarning, match="xyzt_units"):
        volume = vol.load_nifti(path)
    assert volume.spacing == pytest.approx((2.0, 2.0, 3.0))


def test_nifti_with_a_qform_only_matches_nibabel(tmp_path):
    image = nib.Nifti1Image(np.ones((3, 4, 5), np.int16), None)
    affine = np.eye(4)
    affine[:3, :3] = ROTATION @ np.diag([1.5, 1.5, 3.0])
    image.set_qform(affine, code=1)
    image.set_sform(None, code=0)
    image.header.set_xyzt_units("mm")
    path = tmp_path / "q.nii"
    nib.save(image, path)
    assert np.allclose(vol.load_nifti(path).affine, nib.load(path).affine, atol=1e-5)


def test_gzip_damage_is_refused_and_an_intact_file_reads(tmp_path):
    image = nib.Nifti1Image(np.arange(512, dtype=np.float32).reshape(8, 8, 8), np.eye(4))
    image.header.set_xyzt_units("mm")
    raw = bytearray(gzip.compress(image.to_bytes(), mtime=0))
    (tmp_path / "ok.nii.gz").write_bytes(bytes(raw))
    assert np.array_equal(vol.load_nifti(tmp_path / "ok.nii.gz").array, image.get_fdata())
    raw[-6] ^= 0x01  # the stored CRC-32 itself
    (tmp_path / "crc.nii.gz").write_bytes(bytes(raw))
    with pytest.raises(DataError, match="gzip stream is damaged"):
        vol.load_nifti(tmp_path / "crc.nii.gz")
    (tmp_path / "short.nii.gz").write_bytes(bytes(raw[: len(raw) // 2]))
    with pytest.raises(DataError, match="gzip stream is damaged|truncated"):
        vol.load_nifti(tmp_path / "short.nii.gz")


@pytest.mark.parametrize("dtype, word", [(np.complex64, "complex"), (np.complex128, "complex"), (np.uint16, None), (np.int8, None)])
def test_nifti_datatypes(tmp_path, dtype, word):
    path = tmp_path / "t.nii"
    image = nib.Nifti1Image(np.ones((2, 3, 4), dtype), np.eye(4))
    image.header.set_xyzt_units("mm")
    nib.save(image, path)
    if word:
        with pytest.raises(DataError, match=word):
            vol.load_nifti(path)
    else:
        assert vol.load_nifti(path).array.sum() == 24


# --- DICOM against SimpleITK and the standard ------------------------------------------------------------------------

@pytest.mark.parametrize("scale", [1.0, 2.0])  # 2.0: the tester's non-unit ImageOrientationPatient
def test_dicom_series_matches_simpleitk(tmp_path, stored, scale):
    sitk = pytest.importorskip("SimpleITK")
    orientation = np.concatenate([ROW, COLUMN]) * scale
    folder = write_series(tmp_path / "s", stored, orientation, oblique_positions())
    if scale != 1.0:
        with pytest.warns(UserWarning, match="not unit direction cosines"):
            volume = vol.load_dicom_series(folder)
    else:
        volume = vol.load_dicom_series(folder)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    lps = np.eye(4)
    lps[:3, :3] = np.array(image.GetDirection()).reshape(3, 3) @ np.diag(image.GetSpacing())
    lps[:3, 3] = image.GetOrigin()
    assert np.allclose(volume.affine, LPS_TO_RAS @ lps, atol=1e-6), (volume.affine, LPS_TO_RAS @ lps)
    assert volume.spacing == pytest.approx(image.GetSpacing(), abs=1e-6)
    assert volume.spacing == pytest.approx((0.75, 1.25, 2.5), abs=1e-6)
    assert np.array_equal(volume.array, sitk.GetArrayFromImage(image).transpose(2, 1, 0).astype(np.float32))


@pytest.mark.parametrize("scale", [1.0, 2.0])
def test_dicom_series_matches_the_standards_formula(tmp_path, stored, scale):
    orientation = np.concatenate([ROW, COLUMN]) * scale
    positions = oblique_positions()
    with pytest.warns(UserWarning, match="not unit") if scale != 1.0 else no_warning():
        volume = vol.load_dicom_series(write_series(tmp_path / "s", stored, orientation, positions))
    c, r = np.meshgrid(np.arange(stored.shape[0]), np.arange(stored.shape[1]), indexing="ij")
    for k, position in enumerate(positions):
        ijk = np.vstack([c.ravel(), r.ravel(), np.full(c.size, k)])
        want = standard_world(orientation, position, (1.25, 0.75), c.ravel(), r.ravel())
        assert np.allclose(world_of(volume, ijk), want, atol=1e-6)
        assert np.array_equal(volume.array[:, :, k], stored[:, :, k] - 1024.0)


def field(world):
    """A linear field of LPS mm, which linear interpolation reproduces exactly."""
    return 3.0 * world[0] - 2.0 * world[1] + 5.0 * world[2] + 2000.0


@pytest.mark.parametrize("shift_mm", [0.7, -1.1])
def test_gantry_tilt_is_resampled_to_the_standards_positions(tmp_path, shift_mm):
    columns, rows, n, spacing = 9, 8, 6, (1.0, 1.5)  # PixelSpacing: 1 mm between rows, 1.5 between columns
    positions = [np.array([-20.0, 5.0, 30.0]) + k * (2.0 * np.cross(ROW, COLUMN) + shift_mm * COLUMN) for k in range(n)]
    c, r = np.meshgrid(np.arange(columns), np.arange(rows), indexing="ij")
    stored = np.stack([field(standard_world(np.r_[ROW, COLUMN], p, spacing, c.ravel(), r.ravel())).reshape(c.shape)
                       for p in positions], axis=-1)
    folder = write_series(tmp_path / "tilt", np.rint(stored).astype(np.uint16), np.r_[ROW, COLUMN], positions, spacing)
    with pytest.warns(UserWarning, match="gantry tilt of") as caught:
        volume = vol.load_dicom_series(folder)
    angle = np.degrees(np.arctan(abs(shift_mm) / 2.0))
    assert f"{angle:.2f} degrees" in str(caught[0].message)
    assert volume.spacing == pytest.approx((1.5, 1.0, 2.0), abs=1e-6)  # slice spacing: along the normal
    columns_of = np.linalg.inv(LPS_TO_RAS)[:3, :3] @ volume.affine[:3, :3] / np.array(volume.spacing)
    assert np.allclose(columns_of.T @ columns_of, np.eye(3), atol=1e-6)  # an orthogonal grid
    assert volume.shape == (columns, rows + int(np.ceil(abs(shift_mm) * (n - 1))), n)  # grown to hold every slice
    ijk = np.indices(volume.shape).reshape(3, -1)
    world = world_of(volume, ijk)
    # covered: the voxel's place on its slice plane lies within that slice's columns and rows (standard formula)
    offsets = world - np.array(positions)[ijk[2]].T
    along_row, along_column = (offsets.T @ ROW) / 1.5, offsets.T @ COLUMN
    covered = (along_row > -1e-6) & (along_row < columns - 1 + 1e-6) & (along_column > -1e-6) & \
        (along_column < rows - 1 + 1e-6)
    assert covered.mean() > 0.5  # each slice fills 8 of the 12 rows (0.7 mm) or 14 (1.1 mm): measured 0.60
    error = np.abs(volume.array.ravel() - (field(world) - 1024.0))[covered]
    assert error.max() < 0.6, error.max()  # the uint16 rounding of the stored field (0.5), nothing more
    with pytest.raises(DataError, match="degrees off the slice normal"):
        vol.load_dicom_series(folder, tilt="refuse")


def test_dicom_geometry_refusals(tmp_path, stored):
    positions = oblique_positions()
    sixty = np.r_[ROW, 0.5 * ROW + np.sqrt(0.75) * COLUMN]
    with pytest.raises(DataError, match="60.00 degrees apart"):
        vol.load_dicom_series(write_series(tmp_path / "a", stored, sixty, positions))
    near = np.r_[ROW, COLUMN + 0.5 * dicom_geometry.ORTHOGONAL_DEGREES * np.pi / 180 * ROW]
    vol.load_dicom_series(write_series(tmp_path / "b", stored, near, positions))  # inside the tolerance: read
    jitter = [p + (0.3 * COLUMN if k == 3 else 0) for k, p in enumerate(positions)]
    with pytest.raises(DataError, match="do not lie on a line"):
        vol.load_dicom_series(write_series(tmp_path / "c", stored, np.r_[ROW, COLUMN], jitter))
    with pytest.raises(DataError, match="zero-length"):
        vol.load_dicom_series(write_series(tmp_path / "d", stored, np.r_[ROW, 0, 0, 0], positions))
    with pytest.raises(DataError, match="PixelSpacing"):
        vol.load_dicom_series(write_series(tmp_path / "e", stored, np.r_[ROW, COLUMN], positions, (0.0, 1.0)))
    folder = write_series(tmp_path / "f", stored, np.r_[ROW, COLUMN], positions)
    first = sorted(folder.iterdir())[0]
    ds = pydicom.dcmread(first)
    ds.ImagePositionPatient = ["1", "2"]
    ds.save_as(first)
    with pytest.raises(DataError, match="ImagePositionPatient"):
        vol.load_dicom_series(folder)
