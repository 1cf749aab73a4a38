"""The one pixel rule: how a decoded image's values become 0-255, decided by its dtype and declared bit depth.

Never by the range a file happens to use (a 0-1 float image with one pixel at 1.02 is not 0-255 data, and
12-bit data is not 11-bit because its brightest pixel is below 2048):
- uint8 is kept as is;
- unsigned 16-bit (PNG, TIFF) is divided by 2**bits - 1, `bits` being the depth the file declares (a PNG's
  sBIT chunk when present, else the full 16); a value above that depth is refused;
- floats must lie in a declared `value_range` (default [0, 1]) and are mapped linearly onto 0-255; a value
  outside it is refused with the numbers, never rescaled to fit.
fit, evaluate, predict and the lesson loaders all go through `pixels_to_uint8`.
"""

import struct

import numpy as np

from ..base.errors import DataError

__all__ = ["PixelRuleError", "DEFAULT_VALUE_RANGE", "check_value_range", "parse_value_range", "pixels_to_uint8", "png_sbit"]

DEFAULT_VALUE_RANGE = (0.0, 1.0)  # what a float image means unless the caller says otherwise


class PixelRuleError(DataError):
    """A readable image whose values break its declared range or depth: a decision to make, never a file to skip."""


def check_value_range(value_range) -> tuple[float, float]:
    """Return `value_range` as (low, high) floats, or raise a DataError when it is not two finite rising numbers."""
    try:
        low, high = (float(v) for v in value_range)
    except (TypeError, ValueError) as exc:
        raise DataError(f"value_range must be two numbers (low, high), got {value_range!r}.") from exc
    if not (np.isfinite(low) and np.isfinite(high) and high > low):
        raise DataError(f"value_range must be two finite numbers with low < high, got ({low:g}, {high:g}).")
    return low, high


def parse_value_range(text: str) -> tuple[float, float]:
    """Return (low, high) from the CLI's "LOW,HIGH" (e.g. "0,1" or "0,255")."""
    parts = str(text).split(",")
    if len(parts) != 2:
        raise DataError(f"--value-range takes LOW,HIGH (e.g. 0,1 or 0,255), got {text!r}.")
    return check_value_range(parts)


def png_sbit(path) -> int | None:
    """Return the significant bits a PNG's sBIT chunk declares (the largest channel's), or None without one."""
    with open(path, "rb") as f:
        if f.read(8) != b"\x89PNG\r\n\x1a\n":
            return None
        while True:  # chunks before the image data; Pillow does not expose sBIT
            head = f.read(8)
            if len(head) < 8:
                return None
            length, kind = struct.unpack(">I4s", head)
            if kind in (b"IDAT", b"IEND"):
                return None
            body = f.read(length)
            f.seek(4, 1)  # CRC
            if kind == b"sBIT" and body:
                return max(body)


def _refuse_non_finite(image: np.ndarray, what: str) -> None:
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if bad:
        raise DataError(f"{what}: {bad} pixel(s) are NaN or infinite. Fix or drop those images; medkit will not "
                        "guess a value for them.")


def _float_to_uint8(image: np.ndarray, value_range, what: str) -> np.ndarray:
    """Map floats in the declared range onto 0-255; refuse any value outside it, with the numbers."""
    _refuse_non_finite(image, what)
    low, high = check_value_range(value_range)
    seen_low, seen_high = float(image.min()), float(image.max())
    if seen_low < low or seen_high > high:
        raise PixelRuleError(f"{what}: float pixel values span [{seen_low:g}, {seen_high:g}], outside the declared value "
                        f"range [{low:g}, {high:g}]. medkit does not guess a range from the data: declare the one "
                        "the images were saved in (--value-range LOW,HIGH on the CLI, value_range=(low, high) in "
                        "the loaders), or fix the images (for CT, window the Hounsfield units: medkit.data.window).")
    scaled = (image.astype(np.float64) - low) * (255.0 / (high - low))
    return (scaled + 0.5).astype(np.uint8)


def _int_to_uint8(image: np.ndarray, bits: int | None, what: str) -> np.ndarray:
    """Scale unsigned integers by their declared bit depth; refuse negatives and values above that depth."""
    if image.dtype == np.uint8:
        return image
    if image.dtype.kind not in "iu":
        raise DataError(f"{what}: dtype {image.dtype} is not an image type; save uint8, 16-bit or float images.")
    bits = int(bits or image.dtype.itemsize * 8)
    low, high, top = int(image.min()), int(image.max()), 2 ** bits - 1
    if low < 0:
        raise DataError(f"{what}: integer pixel values go down to {low}; they are not display images. For CT, "
                        "read the DICOM and window it (medkit.data.window).")
    if high > top:
        raise PixelRuleError(f"{what}: pixel value {high} is above the {bits}-bit depth the file declares (max {top}). "
                        "Fix the file's declared bit depth (a PNG's sBIT chunk) or its values.")
    return (image.astype(np.float64) * (255.0 / top) + 0.5).astype(np.uint8)


def pixels_to_uint8(image, *, bits: int | None = None, value_range=DEFAULT_VALUE_RANGE, what: str = "image"):
    """Return `image` as uint8 by the one pixel rule (see the module notes).

    Args:
        image: a decoded array (uint8, unsigned 16/32-bit, or float).
        bits: the bit depth the file declares for integer data (None: the dtype's full width).
        value_range: (low, high) that float data was saved in; values outside it are refused.
        what: the file or array named in errors.
    """
    image = np.asarray(image)
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    if image.dtype.kind == "f":
        return _float_to_uint8(image, value_range, what)
    return _int_to_uint8(image, bits, what)
