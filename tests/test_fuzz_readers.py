"""Fuzzing the 2-D readers: damaged PNG, JPEG and DICOM files load correctly or raise a medkit error, nothing else.

Hypothesis draws truncations, bit flips and (for DICOM) hostile values of the header fields the display pipeline
reads, from a fixed seed (`derandomize=True`) with a small budget, so CI sees the same cases every run in a few
seconds. A raw exception (IndexError, struct.error, OverflowError...) or a load that returns garbage (NaN, a wrong
dtype or shape) fails the test with the example that caused it.
"""

import io
import warnings

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR

from medkit.base.errors import MedkitError
from medkit.data import load_image
from medkit.data.dicom import dicom_to_uint8, read_dicom

FUZZ = settings(max_examples=40, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _png() -> bytes:
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 20), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _jpeg() -> bytes:
    rng = np.random.default_rng(1)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


SEEDS = {"png": _png(), "jpg": _jpeg(), "dcm": open(get_testdata_file("MR_small.dcm"), "rb").read()}


def _damage(data: bytes, cut: int | None, flips: list) -> bytes:
    """Return `data` truncated to `cut` bytes (None: whole) with the given (position, bit) pairs flipped."""
    damaged = bytearray(data[:cut] if cut is not None else data)
    for position, bit in flips:
        if damaged:
            damaged[position % len(damaged)] ^= 1 << bit
    return bytes(damaged)


def _check_uint8(image) -> None:
    """A correct load: a uint8 (H, W) or (H, W, 3) array with at least one pixel."""
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8, type(image)
    assert image.ndim in (2, 3) and image.size > 0 and (image.ndim == 2 or image.shape[-1] == 3), image.shape


def _load_or_refuse(read, path):
    """Return read(path), or None when it raised a medkit error; any other exception propagates (the test fails)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return read(path)
    except MedkitError:
        return None


damage = st.tuples(st.one_of(st.none(), st.integers(0, 12_000)),
                   st.lists(st.tuples(st.integers(0, 12_000), st.integers(0, 7)), max_size=6))


# Found by this test, in medkit/data/dicom.py (rewritten on another branch, so reported there, not caught here):
# one flipped bit in the Transfer Syntax UID makes `_check_decoder` raise pydicom's raw "ValueError: UID is not a
# transfer syntax"; flipped VR bytes raise pydicom's "NotImplementedError: Unknown Value Representation".
@pytest.mark.parametrize("kind", ["png", "jpg", "dcm"])
@FUZZ
@given(change=damage)
@example(change=(None, [(254, 0)]))
@example(change=(1661, [(5375, 5), (6329, 3)]))
def test_truncated_or_bit_flipped_files(kind, change, tmp_path):
    path = tmp_path / f"fuzz.{kind}"
    path.write_bytes(_damage(SEEDS[kind], *change))
    image = _load_or_refuse(load_image, path)
    if image is not None:
        _check_uint8(image)
    if kind == "dcm":
        values = _load_or_refuse(read_dicom, path)
        if values is not None:
            assert values.ndim in (2, 3) and values.size > 0 and np.isfinite(values).all()


# The header fields the display pipeline reads, with values no scanner writes.
_NUMBERS = st.one_of(st.integers(-2**31, 2**31), st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0, -1, 1, 65535, 2**32]))
HEADER = {
    "Rows": st.integers(0, 70_000), "Columns": st.integers(0, 70_000), "BitsAllocated": st.sampled_from([0, 1, 7, 8,
                                                                                                         12, 32, 64]),
    "BitsStored": st.integers(0, 40), "HighBit": st.integers(0, 40), "PixelRepresentation": st.integers(0, 3),
    "SamplesPerPixel": st.integers(0, 5), "NumberOfFrames": st.integers(-1, 100),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME1", "RGB", "YBR_FULL", "PALETTE COLOR", "", "BOGUS"]),
    "RescaleSlope": _NUMBERS, "RescaleIntercept": _NUMBERS, "WindowCenter": _NUMBERS, "WindowWidth": _NUMBERS,
    "PlanarConfiguration": st.integers(0, 3),
}


@FUZZ
@example(fields={"Columns": 1})  # found by this test: dicom_to_uint8 returns a (64, 64, 1) array for a 64x64 image
@given(fields=st.dictionaries(st.sampled_from(sorted(HEADER)), st.none(), min_size=1, max_size=3).flatmap(
    lambda keys: st.fixed_dictionaries({k: HEADER[k] for k in keys})))
def test_hostile_header_fields(fields, tmp_path):
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    path = tmp_path / "fuzz.dcm"
    try:
        for keyword, value in fields.items():
            if isinstance(value, float) and dictionary_VR(keyword) in ("US", "SS", "UL", "IS"):
                value = int(value) if np.isfinite(value) else 0
            setattr(ds, keyword, value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(path, enforce_file_format=True)
    except Exception:  # noqa: BLE001 - pydicom refuses to write this value (many kinds): no file to read
        assume(False)  # pydicom itself will not write this value: no file to read
    image = _load_or_refuse(dicom_to_uint8, path)
    if image is not None:
        _check_uint8(image)
    values = _load_or_refuse(read_dicom, path)
    if values is not None:
        assert values.size > 0 and np.isfinite(values).all(), fields
