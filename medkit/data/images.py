"""Read single image files (PNG, JPEG, DICOM) as uint8 and stack them into one array, with clear errors.

The folder and CSV sources share this. Mixed sizes or channel counts are refused unless the caller
asks for a common `image_size` or `channels`, because silently resizing hides a data problem.
"""

import warnings
from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["IMAGE_EXTENSIONS", "DICOM_EXTENSIONS", "load_image", "stack_images", "to_uint8"]

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
DICOM_EXTENSIONS = {".dcm", ".dicom"}


def to_uint8(image: np.ndarray, center_width=None) -> np.ndarray:
    """Map a float image to uint8: through a (center, width) window if given, else its own min..max."""
    from .dicom import window

    image = np.asarray(image, dtype=np.float32)
    if center_width is not None:
        scaled = window(image, center_width)
    else:
        low, high = float(image.min()), float(image.max())
        scaled = (image - low) / (high - low) if high > low else np.zeros_like(image)
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def _read_dicom_uint8(path: Path) -> np.ndarray:
    # Window in the stored-value domain first, then invert MONOCHROME1 (dicom_to_uint8 keeps that order).
    from .dicom import dicom_to_uint8

    return dicom_to_uint8(path)


def load_image(path) -> np.ndarray:
    """Return one image file as uint8, (H, W) for grey or (H, W, 3) for colour.

    PNG/JPEG/TIFF go through Pillow (16-bit greys are scaled to 0-255, alpha is dropped); DICOM
    through `read_dicom`, then its stored window (or its min..max) maps it to 0-255.
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Image file {path} does not exist.")
    suffix = path.suffix.lower()
    if suffix in DICOM_EXTENSIONS:
        return _read_dicom_uint8(path)
    try:
        with Image.open(path) as img:
            img.load()
            if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                array = np.asarray(img, dtype=np.float32)
                return (array / (65535.0 if array.max() > 255 else 255.0) * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
            if img.mode not in ("L", "RGB"):
                img = img.convert("L" if img.mode in ("1", "LA", "F") else "RGB")
            return np.asarray(img, dtype=np.uint8).copy()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if suffix not in IMAGE_EXTENSIONS:  # maybe a DICOM without an extension
            try:
                return _read_dicom_uint8(path)
            except DataError:
                pass
        raise DataError(f"{path} is not a readable image ({type(exc).__name__}: {exc}). Remove or replace it, "
                        "or pass on_error='skip' to leave it out (the count is reported).") from exc


def _resize(image: np.ndarray, size: int) -> np.ndarray:
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
                 source: str = ""):
    """Read `paths` and return (images uint8 (N, H, W[, 3]), kept_index, skipped {path: reason}).

    Args:
        paths: image files (PNG/JPEG/TIFF/DICOM).
        image_size: resize every image to this square size; None requires all sizes to match.
        channels: 1 or 3 to convert every image; None requires all channel counts to match.
        on_error: "raise" (default) stops at the first unreadable file with its path; "skip" leaves
            it out, warns with the count, and lists it in `skipped`.
    """
    if on_error not in ("raise", "skip"):
        raise DataError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be None, 1 or 3, got {channels!r}.")
    images, kept, skipped = [], [], {}
    for i, path in enumerate(paths):
        try:
            image = load_image(path)
        except DataError as exc:
            if on_error == "raise":
                raise
            skipped[str(path)] = str(exc)
            continue
        if channels is not None:
            image = _to_channels(image, channels)
        if image_size is not None:
            image = _resize(image, int(image_size))
        images.append(image)
        kept.append(i)
    if skipped:
        warnings.warn(f"{source or 'images'}: skipped {len(skipped)} unreadable file(s), e.g. {next(iter(skipped))}",
                      stacklevel=3)
    if not images:
        raise DataError(f"{source or 'images'}: no readable images among {len(kept) + len(skipped)} file(s).")
    _check_uniform(images, [paths[i] for i in kept], source)
    return np.stack(images), np.asarray(kept, dtype=np.int64), skipped


def _check_uniform(images, paths, source):
    """Refuse mixed sizes or channel counts, naming one file of each kind."""
    for what, key, fix in (("channel counts", lambda a: 1 if a.ndim == 2 else a.shape[-1], "channels=1 or 3"),
                           ("sizes", lambda a: a.shape[:2], "image_size=N")):
        kinds = {}
        for image, path in zip(images, paths):
            kinds.setdefault(key(image), path)
        if len(kinds) > 1:
            examples = "; ".join(f"{k}: {p}" for k, p in list(kinds.items())[:4])
            raise DataError(f"{source or 'images'}: mixed image {what} ({examples}). Pass {fix} to convert them "
                            "all, after checking that this is what you want.")
