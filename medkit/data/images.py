"""Read single image files (PNG, JPEG, TIFF, DICOM) as uint8 and stack them into one array, with clear errors.

The folder and CSV sources share this. What a file holds is never damaged silently:
- a file that cannot be decoded (empty, truncated, text named .png, a decompression bomb) is a DataError
  naming it (stack_images can skip such files, with the count and the names);
- 16-bit greys are scaled by the bit depth their data actually uses across the whole set (12-bit data
  in a 16-bit PNG is divided by 4095, not 65535, which would leave it near black), float images in 0-1
  or 0-255 are scaled to 0-255 and anything else refused, NaN pixels are refused with their count;
- EXIF orientation is applied, alpha is dropped (the image is treated as opaque), palette images are expanded;
- colour files whose three channels are equal (grey content stored as RGB, like the Kermany JPEGs) load as grey.
Each such conversion is said once per load, with its count (the `notes` list), never once per file.
Mixed sizes are refused unless the caller asks for a common `image_size`; grey and colour mixed are
converted to colour, and said so.
"""

import math
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from ..errors import DataError, MedkitError
from ..paths import check_file
from .dicom import dicom_to_uint8, window

__all__ = ["IMAGE_EXTENSIONS", "DICOM_EXTENSIONS", "ON_ERROR", "load_image", "stack_images", "to_uint8", "resize_image",
           "float_to_uint8", "check_on_error", "warn_notes"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
DICOM_EXTENSIONS = {".dcm", ".dicom"}
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


def float_to_uint8(images: np.ndarray, what: str) -> tuple[np.ndarray, str]:
    """Return (uint8 images, what was done) for float images in 0-1 or 0-255; refuse NaN and other ranges.

    0-1 floats are scaled by 255 (a plain cast would turn them into 0 and 1); 0-255 floats are rounded.
    """
    images = np.asarray(images)
    bad = int(np.count_nonzero(~np.isfinite(images)))
    if bad:
        raise DataError(f"{what}: {bad} pixel(s) are NaN or infinite. Fix or drop those images; medkit will not "
                        "guess a value for them.")
    low, high = float(images.min()), float(images.max())
    if low >= 0 and high <= 1:
        return (images * 255.0 + 0.5).astype(np.uint8), f"float images in 0-1 scaled to 0-255 ({what})"
    if low >= 0 and high <= 255:
        return (images + 0.5).astype(np.uint8), f"float images in 0-255 rounded to uint8 ({what})"
    raise DataError(f"{what}: float pixel values in [{low:g}, {high:g}] are neither 0-1 nor 0-255. Rescale them "
                    "to one of those (for CT, window the Hounsfield units first: medkit.data.window).")


def _unreadable(path: Path, reason: str) -> DataError:
    return DataError(f"{path} is not a readable image ({reason}). Remove or replace it, or pass on_error='skip' "
                     "to leave it out (the count and names are reported).")


def _open(path: Path, size: int | None):
    """Return (decoded array, notes): uint8 for 8-bit files, uint16/int32/float32 as stored otherwise."""
    from PIL import Image, ImageOps

    notes = []
    with Image.open(path) as img:
        if size and img.format == "JPEG":
            img.draft(img.mode, (size, size))  # decode at a reduced scale: large JPEGs load several times faster
        orientation = img.getexif().get(0x0112, 1)
        img.load()
        if orientation not in (None, 1):
            img = ImageOps.exif_transpose(img)
            notes.append(_EXIF)
        if img.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            return np.asarray(img, dtype=np.uint16).copy(), notes
        if img.mode in ("I", "F"):
            return np.asarray(img).copy(), notes
        if img.mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        if img.mode in ("LA", "RGBA", "La", "RGBa", "PA"):
            notes.append("alpha channel(s) dropped (treated as opaque)")
        if img.mode not in ("L", "RGB"):
            img = img.convert("L" if img.mode in ("1", "LA", "La") else "RGB")
        return np.asarray(img, dtype=np.uint8).copy(), notes


def _decode(path, size: int | None = None) -> tuple[np.ndarray, list]:
    """Return (array, notes) for one file, raising DataError for anything that is not a readable image."""
    from PIL import Image

    path = check_file(path, "Image file", allow_empty=True)  # an empty file gets _unreadable's message below
    suffix = path.suffix.lower()
    if suffix in DICOM_EXTENSIONS:  # windowed in the stored-value domain, then MONOCHROME1 inverted
        return dicom_to_uint8(path), []
    if path.stat().st_size == 0:
        raise _unreadable(path, "the file is empty, 0 bytes")
    try:
        return _open(path, size)
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


def _deep_to_uint8(images: list, what: str) -> tuple[list, str | None]:
    """Scale 16/32-bit integer and float images to uint8, by one rule for the whole set; say what was done."""
    ints = [i for i, a in enumerate(images) if a.dtype.kind in "iu" and a.dtype != np.uint8]
    floats = [i for i, a in enumerate(images) if a.dtype.kind == "f"]
    notes = []
    if ints:
        low, high = min(int(images[i].min()) for i in ints), max(int(images[i].max()) for i in ints)
        if low < 0:
            raise DataError(f"{what}: {len(ints)} integer image(s) hold negative values (down to {low}); they are not "
                            "display images. For CT, read the DICOM and window it (medkit.data.window).")
        bits = max(8, math.ceil(math.log2(high + 1)))
        for i in ints:
            images[i] = (images[i].astype(np.float32) * (255.0 / (2 ** bits - 1)) + 0.5).astype(np.uint8)
        notes.append(f"{len(ints)} 16-bit image(s) with values up to {high} scaled as {bits}-bit data "
                     f"(divided by {2 ** bits - 1})")
    if floats:
        scaled, note = float_to_uint8(np.concatenate([images[i].ravel() for i in floats]), what)
        start = 0
        for i in floats:
            images[i] = scaled[start:start + images[i].size].reshape(images[i].shape)
            start += images[i].size
        notes.append(note)
    return images, "; ".join(notes) or None


def load_image(path) -> np.ndarray:
    """Return one image file as uint8, (H, W) for grey or (H, W, 3) for colour.

    PNG/JPEG/TIFF go through Pillow (16-bit greys are scaled by the bit depth their values use, alpha is
    dropped, EXIF orientation applied); DICOM through `read_dicom`, then its stored window (or its
    min..max) maps it to 0-255.
    """
    image, _ = _decode(path)
    if image.dtype != np.uint8:
        image = _deep_to_uint8([image], str(path))[0][0]
    return image


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Return one image (H, W[, C]) resized to `size` square: Pillow's bilinear, which antialiases when shrinking."""
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    if image.dtype != np.uint8:  # 16-bit and float images are resized before they are scaled to 0-255
        return np.asarray(Image.fromarray(image.astype(np.float32)).resize((size, size), Image.BILINEAR))
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    if channels == 1 and image.ndim == 3:
        # ITU-R 601 luma, as Pillow's convert("L") does
        return (image[..., :3].astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) + 0.5).astype(np.uint8)
    if channels == 3 and image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    return image


def stack_images(paths, *, image_size: int | None = None, channels: int | None = None, on_error: str = "raise",
                 source: str = "", notes: list | None = None):
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
    """
    check_on_error(on_error)
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be None, 1 or 3, got {channels!r}.")
    what = source or "images"
    images, kept, skipped, said = [], [], {}, Counter()
    for i, path in enumerate(paths):
        try:
            image, file_notes = _decode(path, image_size)
        except DataError as exc:
            if on_error == "raise":
                raise
            skipped[str(path)] = str(exc)
            continue
        said.update(file_notes)
        if image.dtype == np.uint8 and channels is None and _is_grey_content(image):
            image = image[..., 0].copy()
            said[_GREY] += 1
        elif channels is not None and image.dtype == np.uint8:
            image = _to_channels(image, channels)
        if image_size is not None:
            image = resize_image(image, int(image_size))
        images.append(image)
        kept.append(i)
    if not images:
        raise DataError(f"{what}: no readable images among {len(skipped)} file(s), e.g. {next(iter(skipped), '-')}.")
    images, deep = _deep_to_uint8(images, what)
    lines = [f"{count} {text}" for text, count in said.items()] + ([deep] if deep else [])
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
