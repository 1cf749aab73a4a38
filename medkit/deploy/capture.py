"""The DICOM object `medkit serve` returns for each image: a Secondary Capture a viewer shows beside the study.

The picture is the image as the display pipeline renders it (`medkit.data.dicom.dicom_to_uint8`: modality LUT,
window, presentation), in colour, with a banner burned in: the class and its probability against the
threshold, or FLAGGED and the gate's check with its score when the sanity gate stopped the prediction, and a
line saying it is a research model. highdicom builds the object from the received image, so it carries the same
patient and study and lands in that study in the PACS, in one series per study and model; its UIDs are derived
from the received image's and the model's sha256, so sending the same image twice replaces the result, never
doubles it.
"""

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["SERIES_NUMBER", "result_uids", "banner_lines", "render_result", "secondary_capture"]

SERIES_NUMBER = 9900  # high, so the results series sorts after the acquired ones in a viewer
_MIN_WIDTH, _MAX_WIDTH = 512, 1024  # banner text must be legible on a 48 px input and not bloat a 3000 px film
_FLAGGED, _PREDICTED = (200, 30, 30), (20, 110, 60)  # banner colours: red stops the eye, green reads as "done"


def result_uids(study_uid: str, sop_uid: str, model_sha256: str) -> tuple[str, str]:
    """Return (series UID, SOP instance UID) of the result: fixed by the study, the image and the model."""
    from pydicom.uid import generate_uid

    return (generate_uid(entropy_srcs=["medkit serve series", str(study_uid), model_sha256]),
            generate_uid(entropy_srcs=["medkit serve result", str(sop_uid), model_sha256]))


def banner_lines(row: dict, model_name: str, threshold: float) -> list[str]:
    """Return the text burned into a result: the prediction or FLAGGED with its checks, and what made it."""
    if row["flagged"]:
        checks = "; ".join(f"{c['check']} {c['score']:.3g} vs {c['threshold']:.3g}" for c in row["checks"])
        first = f"FLAGGED - not predicted: {checks}"
    else:
        first = f"{row['prediction']}  p = {row['probability']:.3f}  (threshold {threshold:.2f})"
    return [first, f"medkit serve, model {model_name}: research use, not for diagnosis"]


def render_result(image: np.ndarray, lines: list[str], flagged: bool) -> np.ndarray:
    """Return `image` (uint8 grey or RGB) as RGB at a legible width with `lines` burned into a banner on top."""
    picture = Image.fromarray(image).convert("RGB")
    width = min(max(picture.width, _MIN_WIDTH), _MAX_WIDTH)
    height = max(1, round(picture.height * width / picture.width))
    picture = picture.resize((width, height), Image.Resampling.BILINEAR)
    size = max(12, width // 36)
    font = ImageFont.load_default(size=size)
    banner = Image.new("RGB", (width, (size + size // 2) * len(lines) + size // 2), _FLAGGED if flagged else _PREDICTED)
    draw = ImageDraw.Draw(banner)
    for k, line in enumerate(lines):
        draw.text((size // 2, size // 2 + k * (size + size // 2)), line, fill=(255, 255, 255), font=font)
    out = Image.new("RGB", (width, banner.height + height))
    out.paste(banner, (0, 0))
    out.paste(picture, (0, banner.height))
    return np.asarray(out)


def secondary_capture(ref, pixels: np.ndarray, *, row: dict, model_name: str, model_sha256: str):
    """Return a highdicom Secondary Capture of `pixels` (RGB uint8) in the study of `ref`, the received dataset."""
    import highdicom as hd
    from highdicom.enum import PatientOrientationValuesBiped
    from pydicom.dataset import Dataset

    series_uid, sop_uid = result_uids(ref.StudyInstanceUID, ref.SOPInstanceUID, model_sha256)
    orientation = [str(v) for v in (ref.get("PatientOrientation") or [])]
    known = len(orientation) == 2 and all(_biped(v, PatientOrientationValuesBiped) for v in orientation)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=ref, pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", series_instance_uid=series_uid, series_number=SERIES_NUMBER,
        sop_instance_uid=sop_uid, instance_number=int(ref.get("InstanceNumber") or 1), manufacturer="medkit",
        patient_orientation=tuple(orientation) if known else ("L", "F"), transfer_syntax_uid="1.2.840.10008.1.2.1")
    if not known:  # highdicom wants one; a received image that gave none is not guessed at: empty is "unknown"
        sc.PatientOrientation = ""
    sc.SeriesDescription = f"medkit {model_name} results"[:64]
    sc.BurnedInAnnotation = "YES"  # the result is written into the pixels: de-identification must know
    sc.ImageComments = ("FLAGGED by the sanity gate, not predicted" if row["flagged"]
                        else f"{row['prediction']} p={row['probability']:.4f}")
    source = Dataset()
    source.ReferencedSOPClassUID, source.ReferencedSOPInstanceUID = ref.SOPClassUID, ref.SOPInstanceUID
    sc.SourceImageSequence = [source]
    return sc


def _biped(value: str, values) -> bool:
    """Return whether a PatientOrientation value is made of the biped letters (A, P, L, R, H, F)."""
    letters = {v.value for v in values}
    return bool(value) and all(c in letters for c in value)
