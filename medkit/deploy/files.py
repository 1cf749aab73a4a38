"""Read the files a deployed model is asked about (PNG, JPEG, DICOM) and refuse those it was not made for."""

import warnings
from pathlib import Path

import numpy as np

from ..base.errors import DataError
from ..base.paths import check_file
from ..data.contrast import equalize_image
from ..data.dicom import NotDicomError, dicom_to_uint8, open_dicom
from ..data.images import load_image, resize_image
from ..data.pixels import DEFAULT_VALUE_RANGE

__all__ = ["dicom_modality", "dicom_body_part", "read_for_model", "UNKNOWN_MODALITY"]

UNKNOWN_MODALITY = "UNKNOWN"  # what a DICOM file without a Modality is checked as; a model may list it


def dicom_modality(path) -> str | None:
    """Return the DICOM Modality code of `path` ("CT", "MR", "DX"... or "UNKNOWN"), or None when it is not DICOM."""
    try:
        ds = open_dicom(path, pixels=False, image=True)  # a file cut short says "truncated", not "no Modality"
    except NotDicomError:
        return None
    return str(ds.get("Modality", "") or "").strip().upper() or UNKNOWN_MODALITY


def dicom_body_part(path) -> str:
    """Return the DICOM BodyPartExamined of `path` ("CHEST", "FOOT"...), "" when the file does not say."""
    return str(open_dicom(path, pixels=False).get("BodyPartExamined", "") or "").strip().upper()


def _check_body_part(path: Path, body_part: str, meta: dict) -> None:
    """Refuse a DICOM whose BodyPartExamined the model was not trained on; warn when the model records none."""
    if not body_part:
        return  # many writers leave it empty: nothing contradicts the model
    allowed = [str(b).strip().upper() for b in (meta.get("body_parts") or [])]
    if not allowed:
        warnings.warn(f"{path} is a DICOM of BodyPartExamined {body_part}, but this model records no body part it "
                      "was trained on (exported before medkit kept one), so the part is not checked. Export it "
                      "again (medkit export --body-part ...) to have it checked.", stacklevel=3)
        return
    if body_part not in allowed:
        raise DataError(f"{path} is a DICOM of BodyPartExamined {body_part}, but this model was trained on "
                        f"{'/'.join(allowed)} images; its prediction on a {body_part.lower()} image means nothing. "
                        "Use a model trained for it, or correct BodyPartExamined if the file is mislabelled.")


def _check_modality(path: Path, modality: str, allowed: list) -> None:
    """Refuse a DICOM file whose modality the model was not made for (UNKNOWN only if the model lists it)."""
    if not allowed:
        warnings.warn(f"{path} is a {modality} DICOM, but this model records no modality it was made for, so the "
                      "modality is not checked. Export it again with --modality to have it checked.", stacklevel=3)
        return
    if modality in allowed:
        return
    if modality == UNKNOWN_MODALITY:
        raise DataError(f"{path} is a DICOM file with no Modality, and this model was made for {'/'.join(allowed)} "
                        "images. Check what it is; to accept such files, export the model with "
                        f"--modality {','.join(allowed)},{UNKNOWN_MODALITY}.")
    raise DataError(f"{path} is a {modality} image, but this model was made for {'/'.join(allowed)} images. "
                    "Its predictions on another modality mean nothing; use a model trained for it.")


def read_for_model(path, predictor, resize: bool = False, value_range=DEFAULT_VALUE_RANGE) -> np.ndarray:
    """Return one file as a uint8 (C, H, W) array fit for `predictor` (an OnnxPredictor), or raise DataError.

    A DICOM whose Modality is not among the model's modalities (a file with none counts as UNKNOWN), or whose
    BodyPartExamined is not among its body parts (a model that records neither is warned about), a multi-frame
    DICOM, a colour picture for a grey model, or an image of another size (unless `resize`) is refused with the
    file named. Pixels go through the loaders' one rule (`medkit.data.pixels`): float images must lie in
    `value_range`.
    """

    path = check_file(path, "Image file")
    modality = dicom_modality(path)
    allowed = [str(m).strip().upper() for m in (predictor.meta.get("modalities") or [])]
    if modality is not None:
        _check_modality(path, modality, allowed)
        _check_body_part(path, dicom_body_part(path), predictor.meta)
        image = dicom_to_uint8(path)
    else:
        image = load_image(path, value_range)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] == 3)):
        raise DataError(f"{path} reads as {image.dtype} {image.shape}; a model takes one 2-D grey or RGB image.")
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
        image = resize_image(image, size)
    image = equalize_image(image, predictor.meta.get("contrast") or "none")  # the step the model was trained with
    return image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
