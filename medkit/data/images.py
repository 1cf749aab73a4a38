"""Read single image files (PNG, JPEG, TIFF, DICOM) as uint8 and stack them into one array, with clear errors.

The folder and CSV sources share this. What a file holds is never damaged silently:
- a file that cannot be decoded (empty, truncated, text named .png, a decompression bomb) is a DataError
  naming it (stack_images can skip such files, with the count and the names);
- pixel values go through the one pixel rule (`pixels.pixels_to_uint8`): 16-bit greys by the bit depth the
  file declares (PNG sBIT, else 16), floats only inside a declared `value_range` (default [0, 1]), never by
  the range a file happens to use; NaN pixels are refused with their count;
- an animated GIF/PNG or a multi-page TIFF is refused with its frame count (which frame is the image?);
- EXIF orientation is applied, alpha is dropped (the image is treated as opaque), palette images are expanded;
- colour files whose three channels are equal (grey content stored as RGB, like the Kermany JPEGs) load as grey.
Each such conversion is said once per load, with its count (the `notes` list), never once per file.
Mixed sizes are refused unless the caller asks for a common `image_size`; grey and colour mixed are
converted to colour, and said so.
"""

import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from ..base.checks import check_channels
from ..base.errors import DataError, MedkitError
from ..base.paths import check_file
from .dicom import DICOM_EXTENSIONS, dicom_to_uint8, window
from .pixels import DEFAULT_VALUE_RANGE, PixelRuleError, pixels_to_uint8, png_sbit

__all__ = ["IMAGE_EXTENSIONS", "DICOM_EXTENSIONS", "ON_ERROR", "load_image", "stack_images", "to_uint8", "resize_image",
           "check_on_error", "warn_notes"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
ON_ERROR = ("raise", "skip")
_GREY_TOLERANCE = 2  # JPEG chroma rounding can leave equal channels 1-2 levels apart
_GREY = "colour file(s) with grey content (equal channels) loaded as grey"
_EXIF = "image(s) rotated or flipped by their EXIF orientation"
_LOSSLESS = (_GREY, _EXIF)


def check_on_error(on_error) -> str:
    """Return `on_error` if it is "raise" or "skip", else raise a DataError saying which values exist."""
    if on_error not in ON_ERROR:
        raise DataError(f"on_error must be 'raise' (stop at the first unreadable file) or 'skip' (leave it out and "
                        f"report it), got {on_error!r}.")
    return on_error


def to_uint8(image: np.ndarray, center_width=None) -> np.ndarray:
    """Map a float image to uint8: through a (center, width) window if given, else its own min..max."""
    image = np.asarray(image, dtype=np.float32)
    if center_width is not None:
        scaled = window(image, center_width)
    else:
        low, high = float(image.min()), float(image.max())
        scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def _unreadable(path: Path, reason: str) -> DataError:
    return DataError(f"{path} is not a readable image ({reason}). Remove or replace it, or pass on_error='skip' "
                     "to leave it out (the count and names are reported).")


def _declared_bits(img) -> int | None:
    """Return the bit depth a 16/32-bit integer file declares: PNG sBIT, TIFF BitsPerSample, else None (dtype width)."""
    if img.format == "PNG":
        return png_sbit(img.filename) if getattr(img, "filename", "") else None
    if img.format == "TIFF":
        bits = img.tag_v2.get(258)
        return int(max(bits)) if isinstance(bits, tuple) else (int(bits) if bits else None)
    return None


def _refuse_frames(path: Path, img) -> None:
    """Refuse an animated GIF/PNG or a multi-page TIFF: which frame is the image is not medkit's guess to make."""
    frames = int(getattr(img, "n_frames", 1) or 1)
    if frames > 1:
        kind = {"GIF": "an animated GIF", "PNG": "an animated PNG (APNG)", "TIFF": "a multi-page TIFF"}.get(
            img.format, f"a {img.format} file")
        raise DataError(f"{path} is {kind} with {frames} frames; medkit reads one 2-D image per file. Save the "
                        "frame you mean as its own PNG (e.g. Image.open(f).seek(k); .save(...)) and pass that.")


def _open(path: Path, size: int | None, value_range):
    """Return (uint8 array, notes): 8-bit files as decoded, deeper ones through the one pixel rule."""
    from PIL import Image, ImageOps

    notes = []
    with Image.open(path) as img:
        _refuse_frames(path, img)
        if size and img.format == "JPEG":
            img.draft(img.mode, (size, size))  # decode at a reduced scale: large JPEGs load several times faster
        orientation = img.getexif().get(0x0112, 1)
        bits = _declared_bits(img) if img.mode.startswith("I") else None
        img.load()
        if orientation not in (None, 1):
            img = ImageOps.exif_transpose(img)
            notes.append(_EXIF)
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            return pixels_to_uint8(np.asarray(img, dtype=np.uint16), bits=bits or 16, what=str(path)), notes
        if img.mode in ("I", "F"):
            return pixels_to_uint8(np.asarray(img), bits=bits, value_range=value_range, what=str(path)), notes
        if img.mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        if img.mode in ("LA", "RGBA", "La", "RGBa", "PA"):
            notes.append("alpha channel(s) dropped (treated as opaque)")
        if img.mode not in ("L", "RGB"):
            img = img.convert("L" if img.mode in ("1", "LA", "La") else "RGB")
        return np.asarray(img, dtype=np.uint8).copy(), notes


def _decode(path, size: int | None = None, value_range=DEFAULT_VALUE_RANGE) -> tuple[np.ndarray, list]:
    """Return (array, notes) for one file, raising DataError for anything that is not a readable image."""
    from PIL import Image

    path = check_file(path, "Image file", allow_empty=True)  # an empty file gets _unreadable's message below
    suffix = path.suffix.lower()
    if suffix in DICOM_EXTENSIONS:  # windowed in the stored-value domain, then MONOCHROME1 inverted
        return dicom_to_uint8(path), []
    if path.stat().st_size == 0:
        raise _unreadable(path, "the file is empty, 0 bytes")
    try:
        return _open(path, size, value_range)
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path} claims more pixels than Pillow will decode safely ({exc}); refused as a possible "
                        "decompression bomb. If the image is genuine, raise PIL.Image.MAX_IMAGE_PIXELS first.") from exc
    except MedkitError:
        raise
    except Exception as exc:  # hostile files raise many kinds (OSError, SyntaxError, struct.error...): name the file
        if suffix not in IMAGE_EXTENSIONS:  # maybe a DICOM without an extension
            try:
                return dicom_to_uint8(path), []
            except DataError:
                pass
        raise _unreadable(path, f"{type(exc).__name__}: {exc}") from exc


def _is_grey_content(image: np.ndarray) -> bool:
    if image.ndim != 3 or image.shape[-1] != 3:
        return False
    grey = image[..., :1].astype(np.int16)
    return int(np.abs(image.astype(np.int16) - grey).max()) <= _GREY_TOLERANCE


def load_image(path, value_range=DEFAULT_VALUE_RANGE) -> np.ndarray:
    """Return one image file as uint8, (H, W) for grey or (H, W, 3) for colour.

    PNG/JPEG/TIFF go through Pillow and the one pixel rule (16-bit greys by their declared bit depth, float
    images inside `value_range`; alpha dropped, EXIF orientation applied); DICOM through `read_dicom`, then
    its stored window (or its min..max) maps it to 0-255.
    """
    return _decode(path, value_range=value_range)[0]


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Return one image (H, W[, C]) resized to `size` square: Pillow's bilinear, which antialiases when shrinking."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1 and image.ndim == 3:
        # ITU-R 601 luma, as Pillow's convert("L") does
        return (image[..., :3].astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) + 0.5).astype(np.uint8)
    if channels == 3 and image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    return image


def stack_images(paths, *, image_size: int | None = None, channels: int | None = None, on_error: str = "raise",
                 source: str = "", notes: list | None = None, value_range=DEFAULT_VALUE_RANGE):
    """Read `paths` and return (images uint8 (N, H, W[, 3]), kept_index, skipped {path: reason}).

    Args:
        paths: image files (PNG/JPEG/TIFF/DICOM).
        image_size: resize every image to this square size; None requires all sizes to match.
        channels: 1 or 3 to convert every image; None keeps grey as grey (colour files with grey content
            included) and converts grey to colour when both are present.
        on_error: "raise" (default) stops at the first unreadable file with its path; "skip" leaves
            it out, warns with the count, and lists it in `skipped`.
        notes: a list that receives one line per kind of conversion done (with its count); each is
            also warned once.
        value_range: (low, high) that float image files were saved in (default 0-1); others are refused.
    """
    check_on_error(on_error)
    check_channels(channels, allow_none=True)
    what = source or "images"
    images, kept, skipped, said = [], [], {}, Counter()
    for i, path in enumerate(paths):
        try:
            image, file_notes = _decode(path, image_size, value_range)
        except DataError as exc:
            # on_error="skip" is for unreadable files: a readable image outside its declared range is the
            # caller's call (declare the range), and skipping it would quietly change the data set
            if on_error == "raise" or isinstance(exc, PixelRuleError):
                raise
            skipped[str(path)] = str(exc)
            continue
        said.update(file_notes)
        if image.dtype == np.uint8 and channels is None and _is_grey_content(image):
            image = image[..., 0].copy()
            said[_GREY] += 1
        elif channels is not None:
            image = _to_channels(image, channels)
        if image_size is not None:
            image = resize_image(image, int(image_size))
        images.append(image)
        kept.append(i)
    if not images:
        raise DataError(f"{what}: no readable images among {len(skipped)} file(s), e.g. {next(iter(skipped), '-')}.")
    lines = [f"{count} {text}" for text, count in said.items()]
    if channels is not None:
        images = [_to_channels(a, channels) for a in images]
    elif len({a.ndim for a in images}) > 1:
        n_grey = sum(a.ndim == 2 for a in images)
        images = [_to_channels(a, 3) for a in images]
        lines.append(f"{n_grey} grey image(s) converted to 3 channels to match {len(images) - n_grey} colour "
                     "one(s); pass channels=1 or 3 to choose")
    if skipped:
        names = ", ".join(Path(p).name for p in list(skipped)[:5]) + (" ..." if len(skipped) > 5 else "")
        lines.append(f"skipped {len(skipped)} unreadable file(s): {names}")
    warn_notes(lines, what)
    if notes is not None:
        notes.extend(lines)
    kept_paths = [paths[i] for i in kept]
    _check_uniform(images, kept_paths, what)
    return np.stack(images), np.asarray(kept, dtype=np.int64), skipped


def warn_notes(lines, what: str) -> None:
    """Warn each conversion note once; lossless ones (EXIF orientation, grey stored as RGB) are only noted."""
    for line in lines:
        if not any(text in line for text in _LOSSLESS):
            warnings.warn(f"{what}: {line}", stacklevel=4)


def _check_uniform(images, paths, source):
    """Refuse mixed sizes, naming one file of each size."""
    kinds = {}
    for image, path in zip(images, paths):
        kinds.setdefault(image.shape[:2], path)
    if len(kinds) > 1:
        examples = "; ".join(f"{k}: {p}" for k, p in list(kinds.items())[:4])
        raise DataError(f"{source or 'images'}: mixed image sizes ({examples}). Pass image_size=N to resize them "
                        "all, after checking that this is what you want.")
