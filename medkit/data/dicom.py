"""DICOM in, physical units out: Hounsfield units for CT, and the window/level that maps them to grey.

pydicom does the decoding, the modality LUT (RescaleSlope/Intercept), palette expansion and YBR -> RGB;
this module adds clear errors (a file that cannot be read says which file and what is unsupported),
RTDOSE's DoseGridScaling, MONOCHROME1 inversion and the radiologist's window presets. Display is one
pipeline, PS3.3 C.11: stored values (their range from BitsStored and PixelRepresentation) -> modality LUT
(rescale or Modality LUT Sequence) -> VOI (VOI LUT Sequence, else the stored window with its VOILUTFunction,
else the whole declared range) -> presentation (MONOCHROME1 or PresentationLUTShape INVERSE invert). pydicom's
`apply_modality_lut` and `apply_voi_lut` do the mappings; a header that contradicts itself or flattens the
image is refused by name (`dicom_checks`). Introduced in lesson 01.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.errors import DataError, UnknownNameError
from ..base.paths import check_file
from .dicom_checks import check_complete, check_pixel_module, check_rescale, stored_range

__all__ = ["read_dicom", "load_dicom", "dicom_to_uint8", "DicomPixels", "dicom_info", "open_dicom", "decode_pixels",
           "modality_range", "window", "WINDOWS", "DECODER_HINT", "NotDicomError", "MIN_GREY_LEVELS", "VOI_FUNCTIONS",
           "dicom_scope", "DICOM_EXTENSIONS"]

DICOM_EXTENSIONS = {".dcm", ".dicom"}  # the file names every loader reads as DICOM (medkit.data.images)

# A header that shows every stored value its BitsStored allows as fewer greys than this has flattened the image
# (a width of 1e9 on 16-bit data shows 65536 values as one grey); a narrow but real window keeps far more.
MIN_GREY_LEVELS = 8
VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")  # PS3.3 C.11.2.1.3

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


def open_dicom(path, pixels: bool = True, image: bool = False):
    """Read a DICOM file with pydicom, turning its failures into DataError naming the file.

    A file cut short is refused as truncated; with `image`, so is an Image Storage file without pixel data.

    Files without the 128-byte preamble (older writers) are read too, but only when what pydicom
    finds is recognisably a DICOM dataset (a SOP Class or an image size), never a text file forced open.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = check_file(path, "DICOM file")  # a folder, a FIFO, a loop or /dev/zero named as such, never opened
    try:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=not pixels)
        except InvalidDicomError as exc:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=not pixels, force=True)
            except Exception:  # noqa: BLE001 - forcing a non-DICOM file open fails in many ways
                ds = None
            if ds is None or not ("SOPClassUID" in ds or ("Rows" in ds and "Columns" in ds)):
                raise NotDicomError(f"{path} is not a DICOM file ({exc}). Pass a .dcm file, or read PNG/JPEG with "
                                    "load_image().") from exc
        check_complete(path, image=image)  # pydicom reads a file cut inside an element without a word, short
        return ds
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
    if uid is None:
        return
    if not uid.is_transfer_syntax:  # a damaged or invented UID: pydicom would raise a bare ValueError
        raise DataError(f"{path}: its TransferSyntaxUID {str(uid)!r} is not a DICOM transfer syntax, so its pixel "
                        "data cannot be decoded. The file meta is damaged; re-export the file.")
    if not uid.is_compressed:
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
        if "Rows" in ds and "Columns" in ds:
            raise DataError(f"{path}: its header describes a {ds.get('Columns')}x{ds.get('Rows')} image but the file "
                            "ends before any pixel data: it is truncated. Copy it again from its source.")
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


def _check_shape(stored, ds, path, frames: int) -> None:
    """Refuse pixels whose shape is not what Rows, Columns, SamplesPerPixel and NumberOfFrames declare."""
    spp = int(ds.get("SamplesPerPixel") or 1)
    expected = (int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)) + ((spp,) if spp > 1 else ())
    expected = ((frames,) if frames > 1 else ()) + expected
    if tuple(stored.shape) != expected:
        raise DataError(f"{path}: its pixel data decodes as {tuple(stored.shape)}, but Rows {ds.get('Rows')}, "
                        f"Columns {ds.get('Columns')}, SamplesPerPixel {spp} and {frames} frame(s) declare "
                        f"{expected}. The header is inconsistent with the pixels; re-export the file.")


@dataclass
class DicomPixels:
    """One DICOM file's pixels after the modality LUT, with what display needs, not yet inverted."""

    values: np.ndarray  # float32; grey: physical units (HU for CT, Gy for RTDOSE); colour: RGB 0-255 (..., 3)
    path: Path
    modality: str  # "" when the file has none
    photometric: str  # as stored ("MONOCHROME1", "RGB", "PALETTE COLOR", "YBR_FULL_422"...)
    transfer_syntax: str
    frames: int
    invert: bool  # MONOCHROME1 or PresentationLUTShape INVERSE: low values are shown white
    window: tuple | None  # the stored (center, width) in the values' domain, checked usable; None when absent
    voi_function: str = "LINEAR"
    ds: object = None  # the pydicom Dataset (VOI LUT Sequence, and anything else a caller needs)
    value_range: tuple | None = None  # (lowest, highest) the header allows after the modality LUT; None for floats
    stored: np.ndarray | None = None  # the decoded stored values, before the modality LUT

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


def _voi_function(ds, path) -> str:
    """Return VOILUTFunction (LINEAR when absent), refusing a value the standard does not define."""
    function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
    if function not in VOI_FUNCTIONS:
        raise DataError(f"{path}: VOILUTFunction is {function!r}; PS3.3 C.11.2.1.3 defines only "
                        f"{', '.join(VOI_FUNCTIONS)}. Correct the header or re-export the image.")
    return function


def _stored_window(ds, path) -> tuple | None:
    """Return the first stored (center, width), None when there is none; refuse half, non-numeric or empty ones."""
    present = [k for k in ("WindowCenter", "WindowWidth") if ds.get(k) not in (None, "")]
    if not present:
        return None
    if len(present) == 1:
        missing = "WindowWidth" if present == ["WindowCenter"] else "WindowCenter"
        raise DataError(f"{path}: it has {present[0]} but no {missing}; a window needs both. Correct the header, "
                        "or delete both to show the whole stored range.")
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    if center is None or width is None or not np.isfinite(center) or not np.isfinite(width):
        raise DataError(f"{path}: WindowCenter {ds.get('WindowCenter')!r} / WindowWidth {ds.get('WindowWidth')!r} "
                        "are not finite numbers. Correct the header, or delete both to show the whole stored range.")
    function = _voi_function(ds, path)
    if width < 1 if function == "LINEAR" else width <= 0:  # PS3.3 C.11.2.1.2.1 and C.11.2.1.3
        raise DataError(f"{path}: WindowWidth is {width:g}; a {function} window needs a width "
                        f"{'of at least 1' if function == 'LINEAR' else 'above 0'} (PS3.3 C.11.2.1). Correct the "
                        "header, or delete WindowCenter/WindowWidth to show the whole stored range.")
    return center, width


def _to_physical(stored: np.ndarray, ds, path) -> np.ndarray:
    """Return float64 values through the modality LUT (RescaleSlope/Intercept or a Modality LUT Sequence), or RTDOSE's DoseGridScaling."""
    from pydicom.pixels import apply_modality_lut

    check_rescale(ds, path)
    try:
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
        return values * _dose_scaling(ds)
    except Exception as exc:  # a malformed LUT or a non-numeric rescale
        raise DataError(f"{path}: its modality LUT / rescale values are unusable ({type(exc).__name__}: {exc}).") \
            from exc


def _dose_scaling(ds) -> float:
    """Return RTDOSE's DoseGridScaling (stored integers -> Gy, PS3.3 C.8.8.3) when no rescale replaces it, else 1."""
    if str(ds.get("Modality", "")).upper() == "RTDOSE" and "RescaleSlope" not in ds:
        return float(ds.get("DoseGridScaling", 1.0) or 1.0)
    return 1.0


def _window_ends(ds) -> tuple[float, float]:
    """Return the (y_min, y_max) a window maps onto: the declared stored range through the modality LUT (C.11.2.1.2).

    This is the range pydicom's `apply_windowing` writes its output in; y_min > y_max for a negative slope.
    """
    low, high = stored_range(ds)
    if ds.get("ModalityLUTSequence"):  # unsigned, PS3.3 C.11.1.1.1
        return 0.0, float(2 ** int(ds.ModalityLUTSequence[0].LUTDescriptor[2]) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        return low * slope + intercept, high * slope + intercept
    return float(low), float(high)


def modality_range(ds) -> tuple[float, float] | None:
    """Return the (lowest, highest) value the modality LUT can output for the declared stored range, None for floats."""
    stored = stored_range(ds)
    if stored is None:
        return None
    from pydicom.pixels import apply_modality_lut

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if ds.get("ModalityLUTSequence"):  # a LUT can map the range anywhere: take every value it holds
            ends = apply_modality_lut(np.arange(stored[0], stored[1] + 1) if stored[1] - stored[0] < 2 ** 17
                                      else np.asarray(stored), ds)
        else:
            ends = apply_modality_lut(np.asarray(stored, dtype=np.float64), ds)
    ends = np.asarray(ends, dtype=np.float64) * _dose_scaling(ds)
    return float(ends.min()), float(ends.max())


def _voi_lut_bits(ds, path) -> int:
    """Return the bits of the first VOI LUT's entries, refusing a malformed LUT Descriptor."""
    item = ds.VOILUTSequence[0]
    descriptor = item.get("LUTDescriptor")
    if descriptor is None or len(descriptor) != 3 or item.get("LUTData") is None or int(descriptor[2]) not in (
            8, *range(10, 17)):
        raise DataError(f"{path}: its VOI LUT Sequence has LUTDescriptor {descriptor!r}"
                        f"{' and no LUTData' if item.get('LUTData') is None else ''}; PS3.3 C.11.2.1.1 needs three "
                        "values, the last 8 or 10-16 bits, and the LUT data. Correct or delete the VOI LUT.")
    return int(descriptor[2])


def _voi(values: np.ndarray, pixels: "DicomPixels") -> np.ndarray:
    """Return the VOI transform of modality-LUT values as [0, 1]: VOI LUT Sequence, else window, else the full range.

    pydicom's `apply_voi_lut` does the mapping; its output (a LUT's entries, or y_min..y_max for a window) is
    scaled to [0, 1] by the range the standard gives it. Without a VOI, the whole declared range is shown.
    """
    from pydicom.pixels import apply_voi_lut

    ds, values = pixels.ds, np.asarray(values, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns that a float input to a VOI LUT is truncated, as C.11.2 says
        if ds.get("VOILUTSequence"):
            bits = _voi_lut_bits(ds, pixels.path)
            return np.asarray(apply_voi_lut(values, ds), dtype=np.float64) / float(2 ** bits - 1)
        if pixels.window is not None:
            y_min, y_max = _window_ends(ds)
            return (np.asarray(apply_voi_lut(values, ds, prefer_lut=False), dtype=np.float64) - y_min) / (y_max - y_min)
    low, high = pixels.value_range
    return (values - low) / (high - low)


def _presentation_inverts(ds, path, photometric: str) -> bool:
    """Return whether display inverts grey: MONOCHROME1, or PresentationLUTShape INVERSE (PS3.3 C.11.6, C.8.11.7).

    For MONOCHROME1 the standard pairs the shape INVERSE with it (one inversion, not two); IDENTITY there
    contradicts the photometric interpretation and is refused, as is a Presentation LUT Sequence medkit does not apply.
    """
    if ds.get("PresentationLUTSequence"):
        raise DataError(f"{path}: it carries a Presentation LUT Sequence, which medkit does not apply. Export the "
                        "image with PresentationLUTShape IDENTITY or INVERSE instead.")
    shape = str(ds.get("PresentationLUTShape") or "").strip().upper()
    if shape not in ("", "IDENTITY", "INVERSE"):
        raise DataError(f"{path}: PresentationLUTShape is {shape!r}; medkit applies IDENTITY and INVERSE only "
                        "(PS3.3 C.11.6.1). Correct the header or re-export the image.")
    if photometric == "MONOCHROME1" and shape == "IDENTITY":
        raise DataError(f"{path}: PhotometricInterpretation MONOCHROME1 shows low values white, but "
                        "PresentationLUTShape IDENTITY shows them black; the standard pairs MONOCHROME1 with INVERSE "
                        "(PS3.3 C.8.11.7). Correct one of the two: which is right cannot be told from the file.")
    return photometric == "MONOCHROME1" or shape == "INVERSE"


def _quantise(p_values: np.ndarray) -> np.ndarray:
    """Return [0, 1] presentation values as uint8, rounded to the nearest of 256 greys."""
    return np.floor(np.clip(p_values, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _check_levels(pixels: "DicomPixels") -> None:
    """Refuse a header whose modality LUT or VOI shows the whole declared stored range as a handful of greys."""
    ds, path = pixels.ds, pixels.path
    low, high = stored_range(ds)
    stored = (np.arange(low, high + 1, dtype=np.int64) if high - low < 2 ** 17  # every value the header allows
              else np.unique(np.round(np.linspace(low, high, 2 ** 17 + 1))).astype(np.int64))
    values = _to_physical(stored, ds, path)
    distinct = len(np.unique(values))
    if distinct < min(MIN_GREY_LEVELS, len(stored)):
        raise DataError(f"{path}: its modality LUT maps all {len(stored)} stored values (BitsStored "
                        f"{ds.get('BitsStored')}) to {distinct} value(s), which flattens the image. Correct the "
                        "Modality LUT Sequence / rescale, or re-export the image.")
    greys = len(np.unique(_quantise(_voi(values, pixels))))
    if greys < min(MIN_GREY_LEVELS, distinct):
        if ds.get("VOILUTSequence"):
            what, fix = "its VOI LUT Sequence", "delete the VOI LUT Sequence"
        else:
            center, width = pixels.window
            what = f"its window (WindowCenter {center:g}, WindowWidth {width:g}, {pixels.voi_function})"
            fix = "delete WindowCenter/WindowWidth to show the whole stored range"
        lo, hi = pixels.value_range
        raise DataError(f"{path}: {what} shows the whole range the header allows ({lo:g} to {hi:g}, BitsStored "
                        f"{ds.get('BitsStored')}) as only {greys} grey level(s) of 256, so the image comes out flat. "
                        f"Correct the window, or {fix}.")


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


def _check_stored(stored: np.ndarray, ds, path) -> None:
    """Refuse stored values outside the range BitsStored and PixelRepresentation declare (a lying header)."""
    allowed = stored_range(ds)
    if allowed is None or stored.dtype.kind not in "iub" or stored.size == 0:
        return
    low, high = int(stored.min()), int(stored.max())
    if low < allowed[0] or high > allowed[1]:
        raise DataError(f"{path}: its stored pixel values run from {low} to {high}, outside the {allowed[0]} to "
                        f"{allowed[1]} that BitsStored {ds.get('BitsStored')} and PixelRepresentation "
                        f"{ds.get('PixelRepresentation')} declare. Correct the header or re-export the image.")


def load_dicom(path, frame: int | None = None) -> DicomPixels:
    """Return a DICOM file's pixels after the modality LUT (HU for CT), with what display needs.

    Args:
        path: a DICOM file.
        frame: for multi-frame files, the frame to read (0-based); None keeps them all.
    """
    ds = open_dicom(path, image=True)
    path = Path(path)
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    grey = photometric in ("MONOCHROME1", "MONOCHROME2", "")
    check_pixel_module(ds, path, photometric)
    if photometric == "" and int(ds.get("SamplesPerPixel") or 1) != 1:
        raise DataError(f"{path}: SamplesPerPixel is {ds.get('SamplesPerPixel')} and there is no "
                        "PhotometricInterpretation, so whether it is grey or colour is unknown. Correct the header.")
    frames = _number_of_frames(ds, path)
    stored = decode_pixels(ds, path)
    _check_shape(stored, ds, path, frames)
    if frame is not None:
        if not 0 <= int(frame) < frames:
            raise DataError(f"{path} has {frames} frame(s); frame={frame} does not exist.")
        stored = stored[int(frame)] if frames > 1 else stored
        frames = 1
    _check_stored(stored, ds, path)
    if grey:
        values = _to_physical(stored, ds, path).astype(np.float32)
    else:
        values = _colour(stored, ds, path, photometric)
    if not np.isfinite(values).all():
        raise DataError(f"{path}: its pixel data holds NaN or infinite values; medkit will not guess what they mean.")
    uid = _transfer_syntax(ds)
    return DicomPixels(values=values, path=path, modality=str(ds.get("Modality", "") or ""), photometric=photometric,
                       transfer_syntax=str(uid.name if uid is not None else "unknown"), frames=frames,
                       invert=_presentation_inverts(ds, path, photometric) if grey else False,
                       window=_stored_window(ds, path) if grey else None,
                       voi_function=_voi_function(ds, path) if grey else "LINEAR", ds=ds,
                       value_range=modality_range(ds) if grey else None, stored=stored)


def read_dicom(path, frame: int | None = None) -> np.ndarray:
    """Return the pixels of a DICOM file as float32 in physical units (HU for CT), brighter = higher.

    The modality LUT (RescaleSlope and RescaleIntercept, or a Modality LUT Sequence) is applied,
    so a CT slice comes out in Hounsfield units: air about -1000, water 0, bone several hundred
    and up; RTDOSE comes out in Gy (DoseGridScaling). Images shown inverted (MONOCHROME1, or
    PresentationLUTShape INVERSE) are mirrored within the range their header declares (BitsStored through
    the modality LUT, not the range the pixels happen to cover) so that a higher value is always brighter;
    to display one through its stored window use `dicom_to_uint8`, which windows first and inverts after.
    Colour (RGB, YBR, PALETTE COLOR expanded through its table) comes out as RGB 0-255.
    Shapes: (H, W), (H, W, 3), or with a leading frames axis for multi-frame files unless `frame` is given.
    """
    pixels = load_dicom(path, frame)
    image = pixels.values
    if pixels.invert:
        low, high = pixels.value_range or (0.0, 0.0)  # float pixel data declares no range: mirror about 0
        image = (np.float64(low) + high - image).astype(np.float32)
    return image


def dicom_to_uint8(path) -> np.ndarray:
    """Return one single-frame DICOM image as uint8 for display or a model: (H, W) grey or (H, W, 3) RGB.

    Grey images go through the PS3.3 C.11 pipeline: modality LUT, then their VOI (VOI LUT Sequence, else
    WindowCenter/Width with its VOILUTFunction, else the whole range BitsStored declares), then presentation
    (MONOCHROME1 or PresentationLUTShape INVERSE invert). A header that shows its whole stored range as fewer
    than MIN_GREY_LEVELS greys, or an image the stored window turns into one grey, is refused, never rescued
    by the image's own min..max. Multi-frame files are refused (read one frame with `read_dicom(path, frame=k)`).
    """
    pixels = load_dicom(path)
    if pixels.frames > 1:
        raise DataError(f"{path} holds {pixels.frames} frames; medkit reads one 2-D image per file here. Read a "
                        "frame with medkit.data.read_dicom(path, frame=k), or split the series into single frames.")
    if pixels.photometric not in ("MONOCHROME1", "MONOCHROME2", ""):  # colour, already RGB 0-255
        return np.clip(pixels.values + 0.5, 0, 255).astype(np.uint8)
    if pixels.value_range is None:
        raise DataError(f"{path}: its pixels are floating point, which declare no range to display; read them "
                        "with medkit.data.read_dicom and window them yourself (medkit.data.window).")
    _check_levels(pixels)
    p_values = _voi(_to_physical(pixels.stored, pixels.ds, path), pixels)
    image = _quantise(1.0 - p_values if pixels.invert else p_values)
    if image.min() == image.max() and pixels.stored.min() != pixels.stored.max():
        seen = f"its values run from {float(pixels.values.min()):g} to {float(pixels.values.max()):g}"
        if pixels.ds.get("VOILUTSequence"):
            why = f"its VOI LUT Sequence shows every pixel of this image as grey {image.flat[0]} ({seen})"
        elif pixels.window is not None:
            why = (f"its window (WindowCenter {pixels.window[0]:g}, WindowWidth {pixels.window[1]:g}) shows every "
                   f"pixel of this image as grey {image.flat[0]} ({seen}): the window does not fit the image")
        else:
            low, high = pixels.value_range
            why = (f"it stores no window, so the whole range its header allows ({low:g} to {high:g}, BitsStored "
                   f"{pixels.ds.get('BitsStored')}) is shown, and {seen}: one grey")
        raise DataError(f"{path}: {why}. Give it a window that fits (WindowCenter/WindowWidth), or read it with "
                        "medkit.data.read_dicom and window the values yourself (medkit.data.window).")
    return image


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


def dicom_scope(paths) -> dict:
    """Return {"modalities", "body_parts"} seen among the DICOM files of `paths` (headers only); {} when none is DICOM.

    What a model trained on these files is for: `medkit fit` keeps it in the checkpoint, `medkit export` writes it
    into the sidecar, and `medkit predict` refuses DICOMs of another modality or body part. A file without a
    Modality counts as "UNKNOWN" (so such files stay accepted); one without BodyPartExamined adds no body part.
    """
    modalities, body_parts = set(), set()
    for path in paths:
        if Path(path).suffix.lower() not in DICOM_EXTENSIONS:
            continue
        ds = open_dicom(path, pixels=False)
        modalities.add(str(ds.get("Modality", "") or "").strip().upper() or "UNKNOWN")
        part = str(ds.get("BodyPartExamined", "") or "").strip().upper()
        if part:
            body_parts.add(part)
    if not modalities:
        return {}
    return {"modalities": sorted(modalities), **({"body_parts": sorted(body_parts)} if body_parts else {})}


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
