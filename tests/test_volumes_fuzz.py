"""Fuzzing the volume readers (issue 23): random header fields, truncations and bit flips on a small valid NIfTI and a
small DICOM series. The only outcomes allowed are a MedkitError or a correct load; fixed seed, a few seconds."""

import gzip
import shutil
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.dataelem import RawDataElement

import medkit.volumes as vol
from medkit.base.errors import MedkitError

FUZZ = settings(derandomize=True, max_examples=40, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])
FUZZ_SERIES = settings(FUZZ, max_examples=20)  # each example copies and reads a 5-slice series (~0.1 s)
ARRAY = np.arange(4 * 3 * 5, dtype=np.int16).reshape(4, 3, 5)
AFFINE = np.diag([1.5, 2.0, 3.0, 1.0])
FIELDS = [name for name in nib.Nifti1Header.template_dtype.names if name not in ("sizeof_hdr", "magic")]


def nifti_bytes() -> bytes:
    image = nib.Nifti1Image(ARRAY, AFFINE)
    image.header.set_xyzt_units("mm")
    return image.to_bytes()


def load_or_refuse(load):
    """Return the loaded Volume, or None when refused with a MedkitError; any other exception fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return load()
        except MedkitError:
            return None


def sound(volume) -> None:
    assert volume.array.ndim == 3 and volume.array.dtype == np.float32
    assert np.isfinite(volume.affine).all() and abs(np.linalg.det(volume.affine[:3, :3])) > 0


@FUZZ
@given(field=st.sampled_from(FIELDS), data=st.data())
def test_nifti_header_fields(tmp_path, field, data):
    raw = bytearray(nifti_bytes())
    header = np.frombuffer(raw[:348], dtype=nib.Nifti1Header.template_dtype).copy()
    size = header[field].nbytes
    header[field] = np.frombuffer(data.draw(st.binary(min_size=size, max_size=size)), header[field].dtype).reshape(
        header[field].shape)
    raw[:348] = header.tobytes()
    path = tmp_path / "h.nii"
    path.write_bytes(bytes(raw))
    volume = load_or_refuse(lambda: vol.load_nifti(path))
    if volume is not None:
        sound(volume)
        reference = nib.load(path)  # what the header says, in mm (units other than mm are converted)
        assert volume.shape == reference.shape[:3]
        unit = {1: 1000.0, 3: 0.001}.get(int(reference.header["xyzt_units"]) & 7, 1.0)
        assert np.allclose(volume.affine[:3], reference.affine[:3] * unit, rtol=1e-6, atol=1e-6)


@FUZZ
@given(fraction=st.floats(0, 1, exclude_max=True), compressed=st.booleans())
def test_nifti_truncated(tmp_path, fraction, compressed):
    raw = gzip.compress(nifti_bytes(), mtime=0) if compressed else nifti_bytes()
    path = tmp_path / ("t.nii.gz" if compressed else "t.nii")
    path.write_bytes(raw[:int(fraction * len(raw))])
    assert load_or_refuse(lambda: vol.load_nifti(path)) is None  # every truncation is refused


@FUZZ
@given(bit=st.integers(0, 8 * len(gzip.compress(nifti_bytes(), mtime=0)) - 1))
def test_gzipped_nifti_bit_flips(tmp_path, bit):
    raw = bytearray(gzip.compress(nifti_bytes(), mtime=0))
    raw[bit // 8] ^= 1 << (bit % 8)
    path = tmp_path / "f.nii.gz"
    path.write_bytes(bytes(raw))
    volume = load_or_refuse(lambda: vol.load_nifti(path))
    if volume is not None:  # a flip in the gzip header's free fields (mtime, OS) or in unused padding bits:
        assert np.array_equal(volume.array, ARRAY) and np.allclose(volume.affine, AFFINE)


@FUZZ
@given(bit=st.integers(0, 8 * len(nifti_bytes()) - 1))
def test_nifti_bit_flips(tmp_path, bit):
    raw = bytearray(nifti_bytes())
    raw[bit // 8] ^= 1 << (bit % 8)
    path = tmp_path / "f.nii"
    path.write_bytes(bytes(raw))
    volume = load_or_refuse(lambda: vol.load_nifti(path))
    if volume is not None:  # no checksum in a .nii: a load must at least say what the bytes say
        sound(volume)
        reference = nib.load(path)
        assert volume.shape == reference.shape[:3]
        assert np.array_equal(volume.array, np.asarray(reference.get_fdata(dtype=np.float32)).reshape(volume.shape))


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz_series") / "s"
    vol.write_dicom_series(vol.Volume(ARRAY.astype(np.float32), AFFINE), folder)
    return folder


DICOM_VALUES = {
    "ImageOrientationPatient": st.lists(st.sampled_from(["1", "0", "-1", "2", "0.5", "nan", "1e308", "", "x"]),
                                        min_size=0, max_size=7),
    "ImagePositionPatient": st.lists(st.sampled_from(["0", "3", "-3", "0.7", "nan", "inf", "", "y"]), max_size=4),
    "PixelSpacing": st.lists(st.sampled_from(["1.5", "0", "-1", "2", "nan", "1e-9", ""]), max_size=3),
    "Rows": st.integers(0, 8), "Columns": st.integers(0, 8),
    "RescaleSlope": st.sampled_from(["1", "0", "-2", "nan", "1e300", "", "z"]),
}


@FUZZ_SERIES
@given(key=st.sampled_from(sorted(DICOM_VALUES)), data=st.data(), which=st.integers(0, 4))
def test_dicom_series_header_fields(tmp_path, series, key, data, which):
    folder = tmp_path / "s"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(series, folder)
    path = sorted(folder.iterdir())[which]
    ds = pydicom.dcmread(path)
    value = data.draw(DICOM_VALUES[key])
    if isinstance(value, int):
        setattr(ds, key, value)
    else:  # the raw text, as a broken exporter writes it: pydicom would refuse to build a DS from "x"
        text = "\\".join(value) if isinstance(value, list) else value
        tag = ds.data_element(key).tag if key in ds else pydicom.datadict.tag_for_keyword(key)
        ds[tag] = RawDataElement(tag, "DS", len(text), text.encode(), 0, False, True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(path)
    volume = load_or_refuse(lambda: vol.load_dicom_series(folder))
    if volume is not None:
        sound(volume)
        assert np.isfinite(volume.array).all()


@FUZZ_SERIES
@given(which=st.integers(0, 4), cut=st.floats(0, 1), bit=st.integers(0, 10 ** 6), truncate=st.booleans())
def test_dicom_series_damaged_files(tmp_path, series, which, cut, bit, truncate):
    folder = tmp_path / "s"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(series, folder)
    path = sorted(folder.iterdir())[which]
    raw = bytearray(path.read_bytes())
    if truncate:
        raw = raw[: int(cut * len(raw))]
    else:
        raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    path.write_bytes(bytes(raw))
    volume = load_or_refuse(lambda: vol.load_dicom_series(folder))
    if volume is not None:
        sound(volume)
