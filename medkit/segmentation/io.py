"""Load real segmentations: DICOM SEG objects, and folders of PNG images with PNG masks next to them.

A public segmentation set, once downloaded as PNGs (e.g. a lung-field or lesion set), loads through
`load_png_masks` exactly like a hand-made folder, so a lesson can swap the synthetic lesions for it.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..base.errors import DataError
from ..base.paths import check_dir, check_file
from ..data.dicom import decode_pixels, open_dicom
from .dataset import SegmentationDataset, check_masks

__all__ = ["DicomSeg", "load_dicom_seg", "load_png_masks", "MASK_SUFFIX"]

MASK_SUFFIX = "_mask"  # image.png pairs with image_mask.png when masks sit in the same folder


@dataclass
class DicomSeg:
    """The frames of a DICOM SEG as boolean masks, with the segment each frame belongs to."""

    frames: np.ndarray  # (F, H, W) bool
    segment_of_frame: np.ndarray  # (F,) segment number of each frame (1-based, as in the file)
    segments: dict  # segment number -> label, e.g. {1: "Liver"}
    referenced: list  # SOP Instance UIDs of the source images, frame by frame (None where absent)
    path: str = ""

    def label_map(self, frame_index=None) -> np.ndarray:
        """Return (H, W) integer labels (segment numbers, 0 background) of the frames at `frame_index` (all)."""
        index = np.arange(len(self.frames)) if frame_index is None else np.atleast_1d(frame_index)
        out = np.zeros(self.frames.shape[1:], dtype=np.uint8)
        for i in index:  # later segments win where segments overlap (SEG allows overlap; a label map cannot)
            out[self.frames[i]] = self.segment_of_frame[i]
        return out

    def mask(self, segment: int | None = None) -> np.ndarray:
        """Return the (H, W) binary union of the frames of one segment (all segments when None)."""
        chosen = self.frames if segment is None else self.frames[self.segment_of_frame == segment]
        if segment is not None and len(chosen) == 0:
            raise DataError(f"{self.path}: no frame belongs to segment {segment}; segments are {self.segments}.")
        return chosen.any(0).astype(np.uint8)


def load_dicom_seg(path) -> DicomSeg:
    """Read a DICOM Segmentation object (Modality SEG, BINARY or FRACTIONAL) with pydicom.

    Example: `load_dicom_seg(pydicom.data.get_testdata_file("liver_1frame.dcm"))`, a liver segment.
    """
    path = Path(path)
    ds = open_dicom(path)
    if ds.get("Modality") != "SEG":
        raise DataError(f"{path} has Modality {ds.get('Modality')!r}, not 'SEG': it is an image, not a segmentation. "
                        "Load images with medkit.data.dicom; pass the SEG object here.")
    pixels = np.asarray(decode_pixels(ds, path))
    frames = pixels.reshape((-1,) + pixels.shape[-2:])
    if ds.get("SegmentationType", "BINARY") == "FRACTIONAL":
        frames = frames >= ds.get("MaximumFractionalValue", 255) / 2  # occupancy or probability above one half
    else:
        frames = check_masks(frames, (0, 1), str(path)).astype(bool)
    segments = {int(s.SegmentNumber): str(s.get("SegmentLabel", s.SegmentNumber)) for s in ds.get("SegmentSequence", [])}
    per_frame = ds.get("PerFrameFunctionalGroupsSequence", [])
    numbers, referenced = [], []
    for i in range(len(frames)):
        item = per_frame[i] if i < len(per_frame) else None
        ident = item.get("SegmentIdentificationSequence") if item is not None else None
        numbers.append(int(ident[0].ReferencedSegmentNumber) if ident else (min(segments) if segments else 1))
        source = None
        for deriv in (item.get("DerivationImageSequence", []) if item is not None else []):
            for src in deriv.get("SourceImageSequence", []):
                source = str(src.ReferencedSOPInstanceUID)
        referenced.append(source)
    return DicomSeg(frames, np.array(numbers), segments or {1: "segment 1"}, referenced, str(path))


def _read_grey(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L") if im.mode not in ("L", "1", "P", "I", "I;16") else im)
    except Exception as exc:
        raise DataError(f"{path} is not a readable image ({exc}).") from exc


def load_png_masks(image_dir, mask_dir=None, *, classes=("background", "lesion"), suffix: str = MASK_SUFFIX,
                   name: str | None = None) -> SegmentationDataset:
    """Load PNG images and their PNG masks as a SegmentationDataset.

    Args:
        image_dir: a folder of grey PNG images.
        mask_dir: a folder holding a mask with the same file name per image; None means the masks sit
            next to the images as `<stem><suffix>.png` (e.g. `case1.png` and `case1_mask.png`).
        classes: the label names; mask values must be 0..len(classes)-1. A binary mask saved as
            0/255 (how most tools write them) reads as 0/1.
    """
    image_dir = check_dir(image_dir, "Image folder")
    mask_dir = check_dir(mask_dir, "Mask folder") if mask_dir is not None else None
    paths = sorted(p for p in image_dir.glob("*.png") if mask_dir is not None or not p.stem.endswith(suffix))
    if not paths:
        raise DataError(f"No PNG images in {image_dir}: an empty segmentation set cannot be loaded.")
    images, masks = [], []
    for path in paths:
        mask_path = (mask_dir / path.name) if mask_dir is not None else path.with_name(f"{path.stem}{suffix}.png")
        if not os.path.lexists(mask_path):
            raise DataError(f"Image {path} has no mask {mask_path}; every image needs one (empty masks are allowed).")
        check_file(mask_path, "Mask file")  # a folder, a FIFO or a device in a mask's place, named as such
        image, mask = _read_grey(path), _read_grey(mask_path)
        if image.ndim != 2 or image.dtype != np.uint8:
            raise DataError(f"{path}: expected an 8-bit grey image, got {image.dtype} of shape {image.shape}.")
        if mask.shape != image.shape:
            raise DataError(f"Mask {mask_path} is {mask.shape[:2]} but its image {path} is {image.shape}; "
                            "masks must have the size of their image.")
        if len(classes) == 2 and set(np.unique(mask).tolist()) <= {0, 255}:
            mask = mask // 255
        masks.append(check_masks(mask, range(len(classes)), str(mask_path)))
        images.append(image)
    if len({im.shape for im in images}) > 1:
        sizes = sorted({im.shape for im in images})
        raise DataError(f"Images in {image_dir} have different sizes {sizes[:4]}; resize them to one size first.")
    return SegmentationDataset(np.stack(images), np.stack(masks), list(classes), name=name or image_dir.name,
                               meta={"source": str(image_dir), "files": [p.name for p in paths]})
