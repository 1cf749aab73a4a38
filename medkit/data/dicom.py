"""DICOM in, physical units out: Hounsfield units for CT, and the window/level that maps them to grey.

pydicom does the decoding, the modality LUT (RescaleSlope/Intercept), palette expansion and YBR -> RGB;
this module adds clear errors (a file that cannot be read says which file and what is unsupported),
RTDOSE's DoseGridScaling, MONOCHROME1 inversion and the radiologist's window presets. The order of
display operations follows PS3.3 C.11: stored values -> modality LUT -> VOI (window or VOI LUT, in
that domain) -> MONOCHROME1 inversion. Introduced in lesson 01.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError, UnknownNameError

__all__ = ["read_dicom", "load_dicom", "dicom_to_uint8", "DicomPixels", "dicom_info", "open_dicom", "decode_pixels",
           "window", "WINDOWS", "DECODER_HINT", "NotDicomError"]

# What users need for the compressed transfer syntaxes pydicom cannot decode with numpy and Pillow alone.
DECODER_HINT = ('Install the DICOM decoders with pip install "medkit[dicom]" (pylibjpeg with its JPEG, JPEG 2000 '
                "and RLE plugins, and python-gdcm for JPEG-LS), or convert the file to an uncompressed transfer "
                "syntax first (e.g. gdcmconv --raw or dcmdjpeg).")

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


class NotDicomError(DataError):
    """A file that is not DICOM at all (as opposed to a DICOM file medkit cannot use)."""


def open_dicom(path, pixels: bool = True):
    """Read a DICOM file with pydicom, turning its failures into DataError naming the file.

    Files without the 128-byte preamble (older writers) are read too, but only when what pydicom
    finds is recognisably a DICOM dataset (a SOP Class or an image size), never a text file forced open.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"DICOM file {path} does not exist. Check the path.")
    try:
        try:
            return pydicom.dcmread(path, stop_before_pixels=not pixels)
        except InvalidDicomError as exc:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=not pixels, force=True)
                if "SOPClassUID" in ds or ("Rows" in ds and "Columns" in ds):
                    return ds
            except Exception:  # noqa: BLE001 - forcing a non-DICOM file open fails in many ways
                pass
            raise NotDicomError(f"{path} is not a DICOM file ({exc}). Pass a .dcm file, or read PNG/JPEG with "
                            "load_image().") from exc
    except DataError:
        raise
    except Exception as exc:  # pydicom raises many kinds on damaged headers
        raise DataError(f"{path}: cannot read the DICOM header ({type(exc).__name__}: {exc}). "
                        "The file is probably damaged; re-export it.") from exc


def _transfer_syntax(ds):
    meta = getattr(ds, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def _check_decoder(ds, path) -> None:
    """Refuse, before decoding, a compressed transfer syntax that no installed plugin can decode."""
    from pydicom.pixels.decoders.base import get_decoder

    uid = _transfer_syntax(ds)
    if uid is None or not uid.is_compressed:
        return
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise DataError(f"{path}: its pixel data uses the transfer syntax {uid.name} ({uid}), which no DICOM "
                        "decoder supports. Ask for the file in a standard transfer syntax.") from None
    if not decoder.is_available:
        raise DataError(f"{path}: its pixel data is compressed as {uid.name} ({uid}) and no installed decoder "
                        f"reads it. {DECODER_HINT}")


def decode_pixels(ds, path) -> np.ndarray:
    """Return `ds.pixel_array`, turning a missing or undecodable pixel payload into DataError naming `path`."""
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DataError(f"{path} has no pixel data (a {ds.get('Modality') or 'non-image'} object?). "
                        "Only DICOM images can be read as arrays.")
    _check_decoder(ds, path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns on recoverable oddities; errors still raise
            return ds.pixel_array
    except Exception as exc:  # truncated data, inconsistent header, a decoder that failed
        uid, why = _transfer_syntax(ds), f"({type(exc).__name__}: {str(exc)[:160]})"
        if uid is None and "PixelData" in ds:
            raise DataError(f"{path}: its file meta names no Transfer Syntax UID, so the encoding of its pixel data "
                            f"is unknown {why}. Re-export the file with a complete header.") from exc
        if uid is not None and uid.is_compressed:
            raise DataError(f"{path}: the installed decoders could not decode its {uid.name} pixel data {why}; "
                            f"Pillow, the default, reads only some JPEG variants. {DECODER_HINT}") from exc
        raise DataError(f"{path}: cannot decode the pixel data {why}. The file may be truncated or its header "
                        "inconsistent; re-export it.") from exc


@dataclass
class DicomPixels:
    """One DICOM file's pixels after the modality LUT, with what display needs, not yet inverted."""

    values: np.ndarray  # float32; grey: physical units (HU for CT, Gy for RTDOSE); colour: RGB 0-255 (..., 3)
    path: Path
    modality: str  # "" when the file has none
    photometric: str  # as stored ("MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL_422"...)
    transfer_syntax: str
    frames: int
    invert: bool  # MONOCHROME1: low values are shown white
    window: tuple | None  # the stored (center, width) in the values' domain, if usable
    voi_function: str = "LINEAR"
    ds: object = None  # the pydicom Dataset (VOI LUT Sequence, and anything else a caller needs)

    @property
    def colour(self) -> bool:
        return self.values.shape[-1] == 3 and self.values.ndim == (4 if self.frames > 1 else 3)


def _number_of_frames(ds, path) -> int:
    try:
        return max(int(ds.get("NumberOfFrames") or 1), 1)
    except (TypeError, ValueError):
        raise DataError(f"{path}: NumberOfFrames is {ds.get('NumberOfFrames')!r}, not a number; the header is "
                        "damaged. Re-export the file.") from None


def _first(value) -> float | None:
    """Return the first number of a (possibly multi-valued) DICOM number, or None when absent or not a number."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes)) and hasattr(value, "__getitem__"):
        value = value[0] if len(value) else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _stored_window(ds) -> tuple | None:
    """Return the first stored (center, width), or None when absent or unusable (width <= 0, not a number)."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None:
        return None
    return (center, width) if np.isfinite(center) and np.isfinite(width) and width > 0 else None


def _to_physical(stored: np.ndarray, ds, path) -> np.ndarray:
    """Apply the modality LUT (RescaleSlope/Intercept or a Modality LUT Sequence), or RTDOSE's DoseGridScaling."""
    from pydicom.pixels import apply_modality_lut

    try:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
        if str(ds.get("Modality", "")).upper() == "RTDOSE" and "RescaleSlope" not in ds:
            values = values * float(ds.get("DoseGridScaling", 1.0) or 1.0)  # stored integers -> Gy (PS3.3 C.8.8.3)
    except Exception as exc:  # a malformed LUT or a non-numeric rescale
        raise DataError(f"{path}: its modality LUT / rescale values are unusable ({type(exc).__name__}: {exc}).") \
            from exc
    return values.astype(np.float32)


def _colour(stored: np.ndarray, ds, path, photometric: str) -> np.ndarray:
    """Return RGB 0-255 float32 for PALETTE COLOR (expanded through its LUT) and RGB/YBR (pydicom gives RGB)."""
    from pydicom.pixels import apply_color_lut

    if photometric == "PALETTE COLOR":
        try:
            rgb = apply_color_lut(stored, ds)
        except Exception as exc:
            raise DataError(f"{path}: a PALETTE COLOR image whose colour table cannot be applied "
                            f"({type(exc).__name__}: {exc}).") from exc
        rgb = rgb[..., :3]
        scale = 255.0 / (255.0 if rgb.dtype == np.uint8 else 65535.0)
        return (rgb.astype(np.float32) * np.float32(scale))
    if stored.shape[-1] != 3:
        raise DataError(f"{path}: photometric {photometric} with {stored.shape[-1]} samples per pixel is not "
                        "supported; medkit reads grey, RGB, YBR and PALETTE COLOR images.")
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
    if photometric not in ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "YBR_PARTIAL_420"):
        raise DataError(f"{path}: photometric interpretation {photometric!r} is not supported; medkit reads "
                        "MONOCHROME1/2, RGB, YBR_* and PALETTE COLOR.")
    # pydicom converts YBR to RGB while decoding (its default as_rgb=True); scale deep colour to 0-255
    return stored.astype(np.float32) * np.float32(255.0 / (2 ** bits - 1))


def load_dicom(path, frame: int | None = None) -> DicomPixels:
    """Return a DICOM file's pixels after the modality LUT (HU for CT), with what display needs.

    Args:
        path: a DICOM file.
        frame: for multi-frame files, the frame to read (0-based); None keeps them all.
    """
    ds = open_dicom(path)
    path = Path(path)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    frames = _number_of_frames(ds, path)
    stored = decode_pixels(ds, path)
    if frame is not None:
        if not 0 <= int(frame) < frames:
            raise DataError(f"{path} has {frames} frame(s); frame={frame} does not exist.")
        stored = stored[int(frame)] if frames > 1 else stored
        frames = 1
    if photometric in ("MONOCHROME1", "MONOCHROME2", ""):
        values = _to_physical(stored, ds, path)
    else:
        values = _colour(stored, ds, path, photometric)
    if not np.isfinite(values).all():
        raise DataError(f"{path}: its pixel data holds NaN or infinite values; medkit will not guess what they mean.")
    uid = _transfer_syntax(ds)
    return DicomPixels(values=values, path=path, modality=str(ds.get("Modality", "") or ""), photometric=photometric,
                       transfer_syntax=str(uid.name if uid is not None else "unknown"), frames=frames,
                       invert=photometric == "MONOCHROME1", window=_stored_window(ds),
                       voi_function=str(ds.get("VOILUTFunction", "LINEAR") or "LINEAR").upper(), ds=ds)


def read_dicom(path, frame: int | None = None) -> np.ndarray:
    """Return the pixels of a DICOM file as float32 in physical units (HU for CT), brighter = higher.

    The modality LUT (RescaleSlope and RescaleIntercept, or a Modality LUT Sequence) is applied,
    so a CT slice comes out in Hounsfield units: air about -1000, water 0, bone several hundred
    and up; RTDOSE comes out in Gy (DoseGridScaling). MONOCHROME1 images (where low values are shown
    white) are mirrored within their own range so that a higher value is always brighter; to display
    one through its stored window use `dicom_to_uint8`, which windows first and inverts after.
    Colour (RGB, YBR, PALETTE COLOR expanded through its table) comes out as RGB 0-255.
    Shapes: (H, W), (H, W, 3), or with a leading frames axis for multi-frame files unless `frame` is given.
    """
    pixels = load_dicom(path, frame)
    image = pixels.values
    if pixels.invert:
        image = float(image.max() + image.min()) - image  # mirror within the same range
    return image


def _voi(pixels: DicomPixels) -> np.ndarray | None:
    """Return the stored VOI transform of grey values mapped to [0, 1], or None when the file stores none usable."""
    ds, values = pixels.ds, pixels.values
    if ds is not None and ds.get("VOILUTSequence"):
        from pydicom.pixels import apply_voi

        try:
            item = ds.VOILUTSequence[0]
            out = np.asarray(apply_voi(values.astype(np.float64), ds, 0), dtype=np.float32)
            top = float(2 ** int(item.LUTDescriptor[2]) - 1)
            return np.clip(out / np.float32(top), 0.0, 1.0)
        except Exception:  # noqa: BLE001 - a malformed VOI LUT: fall back to the window or the data's range
            pass
    if pixels.window is None:
        return None
    center, width = pixels.window
    if pixels.voi_function == "SIGMOID":  # PS3.3 C.11.2.1.3.1
        return (1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))).astype(np.float32)
    return window(values, (center, width))


def dicom_to_uint8(path) -> np.ndarray:
    """Return one single-frame DICOM image as uint8 for display or a model: (H, W) grey or (H, W, 3) RGB.

    Grey images go through their stored VOI (VOI LUT Sequence, else WindowCenter/Width, in the modality-LUT
    domain, as the standard orders it); without one, or when the stored window makes a varied image flat,
    through their own min..max. MONOCHROME1 is inverted only after that, so a stored window is applied to
    the values it was written for. Multi-frame files are refused (read one frame with `read_dicom(path, frame=k)`).
    """
    pixels = load_dicom(path)
    if pixels.frames > 1:
        raise DataError(f"{path} holds {pixels.frames} frames; medkit reads one 2-D image per file here. Read a "
                        "frame with medkit.data.read_dicom(path, frame=k), or split the series into single frames.")
    values = pixels.values
    if values.ndim == 3:  # colour, already RGB 0-255
        return np.clip(values + 0.5, 0, 255).astype(np.uint8)
    scaled = _voi(pixels)
    if scaled is not None and scaled.min() == scaled.max() and values.min() != values.max():
        warnings.warn(f"{path}: the stored window {pixels.window} maps the whole image to one grey; "
                      "using the image's own range instead.", stacklevel=2)
        scaled = None
    if scaled is None:
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low) if high > low else np.zeros_like(values)
    if pixels.invert:
        scaled = 1.0 - scaled
    return (np.clip(scaled, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def dicom_info(path) -> dict:
    """Return the header fields a lesson needs: modality, size, spacing, rescale and stored window."""
    ds = open_dicom(path, pixels=False)
    first = _first
    return {
        "modality": str(ds.get("Modality", "")),
        "photometric": str(ds.get("PhotometricInterpretation", "")),
        "rows": int(first(ds.get("Rows")) or 0), "columns": int(first(ds.get("Columns")) or 0),
        "pixel_spacing_mm": [v for v in (first([x]) for x in (ds.get("PixelSpacing") or [])) if v is not None],
        "slice_thickness_mm": first(ds.get("SliceThickness")),
        "rescale_slope": first(ds.get("RescaleSlope")), "rescale_intercept": first(ds.get("RescaleIntercept")),
        "window_center": first(ds.get("WindowCenter")), "window_width": first(ds.get("WindowWidth")),
        "bits_stored": int(first(ds.get("BitsStored")) or 0),
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
    "abdomen", ...), a (center, width) pair, or "auto": the 1st to 99th percentile of the image itself
    (an X-ray PNG is already windowed, and the stretch keeps a few bright labels from washing the lungs
    out). Works on numpy arrays and torch tensors; returns float32.
    """
    if isinstance(preset_or_center_width, str) and preset_or_center_width == "auto":
        values = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image, dtype=np.float32)
        low, high = (float(v) for v in np.percentile(values, (1, 99)))
        preset_or_center_width = ((low + high) / 2.0, max(high - low, 1e-7))
    center, width = _center_width(preset_or_center_width)
    low = center - width / 2.0
    if hasattr(image, "clamp"):  # a torch tensor: stay in torch
        return ((image.float() - low) / width).clamp(0.0, 1.0)
    image = np.asarray(image, dtype=np.float32)
    return np.clip((image - np.float32(low)) / np.float32(width), 0.0, 1.0).astype(np.float32)
