"""Refuse, by name, the DICOM headers a display pipeline would silently turn into a wrong picture.

Each check names the attribute, its value and what to do: a file cut short (pydicom reads such files
without a word, short), a pixel module that contradicts itself (BitsStored > BitsAllocated, SamplesPerPixel
vs PhotometricInterpretation), and a modality LUT that erases the image (RescaleSlope 0). The value range of
the stored pixels comes from BitsStored and PixelRepresentation (PS3.3 C.7.6.3), never from the pixels seen.
"""

import math
import warnings
from pathlib import Path

from ..base.errors import DataError

__all__ = ["check_complete", "check_pixel_module", "check_rescale", "dicom_number", "stored_range", "samples_for"]

_UNDEFINED = 0xFFFFFFFF
_FIX = "Re-export the image from its source, or correct the header."


def samples_for(photometric: str) -> int | None:
    """Return the SamplesPerPixel that a PhotometricInterpretation requires (PS3.3 C.7.6.3.1.2), None if unknown."""
    if photometric in ("MONOCHROME1", "MONOCHROME2", "PALETTE COLOR"):
        return 1
    if photometric == "RGB" or photometric.startswith("YBR"):
        return 3
    return None


def _int(ds, keyword: str, path) -> int | None:
    """Return an integer attribute, None when absent, refusing one that is not an integer."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {keyword} is {value!r}, not an integer. {_FIX}") from None


def check_pixel_module(ds, path, photometric: str) -> None:
    """Refuse an Image Pixel module that contradicts itself: bits, sign, samples vs photometric interpretation."""
    samples, allocated = _int(ds, "SamplesPerPixel", path), _int(ds, "BitsAllocated", path)
    stored, high, sign = _int(ds, "BitsStored", path), _int(ds, "HighBit", path), _int(ds, "PixelRepresentation", path)
    needed = samples_for(photometric)
    if samples is not None and needed is not None and samples != needed:
        raise DataError(f"{path}: SamplesPerPixel is {samples} but PhotometricInterpretation {photometric} has "
                        f"{needed} sample(s) per pixel (PS3.3 C.7.6.3.1.2); the header contradicts itself, so medkit "
                        f"will not guess whether this is a grey or a colour image. {_FIX}")
    if allocated is not None and (allocated < 1 or (allocated != 1 and allocated % 8)):
        raise DataError(f"{path}: BitsAllocated is {allocated}; it must be 1 or a multiple of 8. {_FIX}")
    if stored is not None and allocated is not None and not 1 <= stored <= allocated:
        raise DataError(f"{path}: BitsStored is {stored} but BitsAllocated is {allocated}; a pixel cannot store "
                        f"more bits than it is allocated (PS3.3 C.7.6.3.1.1). {_FIX}")
    if stored is not None and high is not None and high != stored - 1:
        raise DataError(f"{path}: HighBit is {high} but BitsStored is {stored}; HighBit must be BitsStored - 1 "
                        f"({stored - 1}). {_FIX}")
    if sign is not None and sign not in (0, 1):
        raise DataError(f"{path}: PixelRepresentation is {sign}; it must be 0 (unsigned) or 1 (two's complement). "
                        f"{_FIX}")


def stored_range(ds) -> tuple[int, int] | None:
    """Return (lowest, highest) stored value that BitsStored and PixelRepresentation allow, None for float data."""
    if "PixelData" not in ds:
        return None
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 0)
    if bits < 1:
        return None
    if int(ds.get("PixelRepresentation") or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def dicom_number(ds, keyword: str, path, fix: str = _FIX) -> float | None:
    """Return attribute `keyword` of `ds` as a finite float (None when absent or empty), or refuse it by name."""
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(f"{path}: {keyword} is {value!r}, not a number. {fix}") from None
    if not math.isfinite(number):
        raise DataError(f"{path}: {keyword} is {value!r}, not a finite number. {fix}")
    return number


def check_rescale(ds, path) -> None:
    """Refuse a modality LUT that is inconsistent (both kinds, half a rescale) or erases the image (slope 0)."""
    slope, intercept = dicom_number(ds, "RescaleSlope", path), dicom_number(ds, "RescaleIntercept", path)
    if ds.get("ModalityLUTSequence") and (slope is not None or intercept is not None):
        raise DataError(f"{path}: it holds both a Modality LUT Sequence and RescaleSlope/RescaleIntercept; the "
                        "standard allows one or the other (PS3.3 C.11.1), so which one applies is unknown. " + _FIX)
    if (slope is None) != (intercept is None):
        present, missing = ("RescaleSlope", "RescaleIntercept") if intercept is None else (
            "RescaleIntercept", "RescaleSlope")
        raise DataError(f"{path}: it has {present} but no {missing}; a rescale needs both (PS3.3 C.11.1.1.2). "
                        + _FIX)
    if slope == 0:
        raise DataError(f"{path}: RescaleSlope is 0, which maps every pixel to RescaleIntercept ({intercept:g}) and "
                        f"erases the image. {_FIX}")


_PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)  # Float, DoubleFloat and (integer) Pixel Data


def _walk(fp, begin: int, implicit: bool, little: bool, size: int, stop) -> tuple[int, str, bool]:
    """Walk the top-level elements from `begin` without reading values; return (end, last element, pixels seen)."""
    from pydicom.filereader import data_element_generator

    fp.seek(begin)
    end, last, pixels = begin, "its first element", False
    for elem in data_element_generator(fp, implicit, little, stop_when=stop, defer_size=0):
        name = f"element {elem.tag}"
        length = getattr(elem, "length", _UNDEFINED)  # parsed sequences come back as DataElements
        if length != _UNDEFINED and elem.value_tell + length > size:
            raise EOFError(f"{name} declares {length} bytes of value but only {size - elem.value_tell} remain")
        end, last, pixels = fp.tell(), name, pixels or elem.tag in _PIXEL_TAGS
    return end, last, pixels


def check_complete(path, image: bool = False) -> None:
    """Refuse a DICOM file that ends inside an element (header or pixel data): pydicom reads it short, silently.

    With `image`, an Image Storage file that ends before any pixel data (cut between two elements) is refused too.
    """
    from pydicom.filereader import read_partial
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as fp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        head = read_partial(fp, stop_when=lambda *_: True, defer_size=0, force=True)
        start = fp.tell()
        meta = getattr(head, "file_meta", None)
        if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            return  # the dataset is one deflate stream: zlib checks its own end
        fp.seek(128)
        meta_start = 132 if fp.read(4) == b"DICM" else 0
        implicit, little = (v if v is not None else True for v in head.original_encoding)
        try:
            end, last, _ = _walk(fp, meta_start, False, True, size, lambda tag, vr, length: tag >> 16 != 2)
            if end < start:
                raise EOFError(f"the file meta ends at byte {end}, before its declared end at byte {start}")
            try:
                end, last, pixels = _walk(fp, start, implicit, little, size, None)
            except Exception as first:  # noqa: BLE001 - pydicom switches VR style when the meta lies; so do we
                try:
                    end, last, pixels = _walk(fp, start, not implicit, little, size, None)
                except Exception:  # noqa: BLE001
                    raise first from None
            if end < size:
                raise EOFError(f"the file ends {size - end} byte(s) into the element after {last}")
            sop = meta.get("MediaStorageSOPClassUID") if meta is not None else None
            if image and not pixels and sop is not None and "Image Storage" in str(getattr(sop, "name", "")):
                raise EOFError(f"it is a {sop.name} object, but the file ends after {last}, before the pixel data "
                               "every image holds (or its pixels were stripped)")
        except Exception as exc:  # noqa: BLE001 - EOFError, struct.error, OSError: all mean the bytes ran out
            raise DataError(f"{path} is truncated: {exc} ({size} bytes in all). The file was cut short (an "
                            "interrupted copy, download or export); copy it again from its source.") from None
