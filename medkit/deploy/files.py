"""Read the files a deployed model is asked about (PNG, JPEG, DICOM) and refuse those it was not made for."""

from pathlib import Path

import numpy as np

from ..errors import DataError

__all__ = ["dicom_modality", "read_for_model"]

_DICOM_SUFFIXES = {".dcm", ".dicom"}


def dicom_modality(path) -> str | None:
    """Return the DICOM Modality code of `path` ("CT", "MR", "DX"...), or None when it is not a DICOM file."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = Path(path)
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=path.suffix.lower() in _DICOM_SUFFIXES)
    except (InvalidDicomError, OSError, EOFError):
        return None
    except Exception as exc:  # a damaged header: say which file
        raise DataError(f"{path}: cannot read the DICOM header ({type(exc).__name__}: {exc}).") from exc
    return str(ds.get("Modality", "")).upper() or "unknown"


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    # Pillow's BILINEAR filter widens with the scale when shrinking, i.e. it antialiases.
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def read_for_model(path, predictor, resize: bool = False) -> np.ndarray:
    """Return one file as a uint8 (C, H, W) array fit for `predictor` (an OnnxPredictor), or raise DataError.

    A DICOM whose Modality is not among the model's modalities, a colour picture for a grey model, or
    an image of another size (unless `resize`) is refused with the file named.
    """
    from ..data.images import load_image

    path = Path(path)
    if not path.is_file():
        raise DataError(f"Image file {path} does not exist.")
    modality = dicom_modality(path)
    allowed = list(predictor.meta.get("modalities") or [])
    if modality is not None and allowed and modality not in allowed:
        raise DataError(f"{path} is a {modality} image, but this model was made for {'/'.join(allowed)} images. "
                        "Its predictions on another modality mean nothing; use a model trained for it.")
    image = load_image(path)
    if predictor.channels == 1 and image.ndim == 3:
        if not (np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 0], image[..., 2])):
            raise DataError(f"{path} is a colour image, but this model reads grey "
                            f"{'/'.join(allowed) or 'medical'} images. Is it the right kind of image?")
        image = image[..., 0]
    if predictor.channels == 3 and image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    size = predictor.input_size
    if image.shape[:2] != (size, size):
        if not resize:
            raise DataError(f"{path} is {image.shape[1]}x{image.shape[0]} px, but the model takes {size}x{size} px. "
                            "Pass --resize (resize=True) to resample it, after checking it is the right kind of image.")
        image = _resize(image, size)
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
