"""DICOM in, physical units out: Hounsfield units for CT, and the window/level that maps them to grey.

pydicom does the decoding and the modality LUT (RescaleSlope/Intercept); this module adds clear
errors, MONOCHROME1 inversion and the radiologist's window presets. Introduced in lesson 01.
"""

from pathlib import Path

import numpy as np

from ..errors import DataError, UnknownNameError

__all__ = ["read_dicom", "dicom_info", "open_dicom", "decode_pixels", "window", "WINDOWS"]

# (center, width) in HU: the usual radiology presets (Radiopaedia, "Windowing (CT)").
WINDOWS = {
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (32.0, 8.0),
    "abdomen": (50.0, 400.0),
    "liver": (30.0, 150.0),
    "soft_tissue": (40.0, 350.0),
}


def open_dicom(path, pixels: bool = True):
    """Read a DICOM file with pydicom, turning its failures into DataError naming the file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"DICOM file {path} does not exist. Check the path.")
    try:
        return pydicom.dcmread(path, stop_before_pixels=not pixels)
    except InvalidDicomError as exc:
        raise DataError(f"{path} is not a DICOM file ({exc}). Pass a .dcm file, or read PNG/JPEG with load_image().") \
            from exc
    except Exception as exc:  # pydicom raises many kinds on damaged headers
        raise DataError(f"{path}: cannot read the DICOM header ({type(exc).__name__}: {exc}). "
                        "The file is probably damaged; re-export it.") from exc


def decode_pixels(ds, path) -> np.ndarray:
    """Return `ds.pixel_array`, turning a missing or undecodable pixel payload into DataError naming `path`."""
    if "PixelData" not in ds:
        raise DataError(f"{path} has no pixel data (a {ds.get('Modality', 'non-image')} object?). "
                        "Only DICOM images can be read as arrays.")
    try:
        return ds.pixel_array
    except Exception as exc:  # truncated data, unsupported compression, inconsistent header
        raise DataError(f"{path}: cannot decode the pixel data ({type(exc).__name__}: {exc}). "
                        "The file may be truncated or use a compression with no installed decoder.") from exc


def read_dicom(path) -> np.ndarray:
    """Return the pixels of a DICOM file as float32 in physical units (HU for CT), brighter = higher.

    The modality LUT (RescaleSlope and RescaleIntercept, or a Modality LUT Sequence) is applied,
    so a CT slice comes out in Hounsfield units: air about -1000, water 0, bone several hundred
    and up. MONOCHROME1 images (where low values are shown white) are inverted so that a higher
    value is always brighter. Shapes: (H, W), (frames, H, W), or (H, W, 3) for colour.
    """
    from pydicom.pixels import apply_modality_lut

    ds = open_dicom(path)
    stored = decode_pixels(ds, path)
    image = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
    if ds.get("PhotometricInterpretation", "") == "MONOCHROME1":
        image = float(image.max() + image.min()) - image  # mirror within the same range
    return image


def dicom_info(path) -> dict:
    """Return the header fields a lesson needs: modality, size, spacing, rescale and stored window."""
    ds = open_dicom(path, pixels=False)

    def first(value):  # WindowCenter may be multi-valued
        if value is None:
            return None
        return float(value[0]) if hasattr(value, "__len__") and not isinstance(value, str) else float(value)

    return {
        "modality": str(ds.get("Modality", "")),
        "photometric": str(ds.get("PhotometricInterpretation", "")),
        "rows": int(ds.get("Rows", 0)), "columns": int(ds.get("Columns", 0)),
        "pixel_spacing_mm": [float(v) for v in ds.get("PixelSpacing", [])],
        "slice_thickness_mm": first(ds.get("SliceThickness")),
        "rescale_slope": first(ds.get("RescaleSlope")), "rescale_intercept": first(ds.get("RescaleIntercept")),
        "window_center": first(ds.get("WindowCenter")), "window_width": first(ds.get("WindowWidth")),
        "bits_stored": int(ds.get("BitsStored", 0)),
    }


def _center_width(preset_or_center_width) -> tuple[float, float]:
    if isinstance(preset_or_center_width, str):
        if preset_or_center_width not in WINDOWS:
            raise UnknownNameError(f"Unknown window {preset_or_center_width!r}; presets: {', '.join(WINDOWS)}, "
                                   "or pass (center, width).")
        return WINDOWS[preset_or_center_width]
    try:
        center, width = (float(v) for v in preset_or_center_width)
    except (TypeError, ValueError) as exc:
        raise DataError(f"A window is a preset name or (center, width); got {preset_or_center_width!r}.") from exc
    if not np.isfinite(center) or not np.isfinite(width) or width <= 0:
        raise DataError(f"Window width must be a positive number and center finite; got center={center}, "
                        f"width={width}.")
    return center, width


def window(image, preset_or_center_width="lung"):
    """Map `image` (HU) to [0, 1]: `center - width/2` -> 0, `center + width/2` -> 1, clipped outside.

    `preset_or_center_width` is a name from WINDOWS ("lung", "mediastinum", "bone", "brain",
    "abdomen", ...) or a (center, width) pair. Works on numpy arrays and torch tensors; returns float32.
    """
    center, width = _center_width(preset_or_center_width)
    low = center - width / 2.0
    if hasattr(image, "clamp"):  # a torch tensor: stay in torch
        return ((image.float() - low) / width).clamp(0.0, 1.0)
    image = np.asarray(image, dtype=np.float32)
    return np.clip((image - np.float32(low)) / np.float32(width), 0.0, 1.0).astype(np.float32)
