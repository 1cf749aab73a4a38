"""Segmentation (lesson 07): lesions inserted into real X-rays, a U-Net on a registry encoder, Dice and friends."""

from .dataset import MaskLoader, SegmentationDataset, check_masks, resize_images
from .io import MASK_SUFFIX, DicomSeg, load_dicom_seg, load_png_masks
from .lesions import LESION_COLUMNS, LesionSpec, insert_lesions
from .losses import LOSSES, DiceBCELoss, get_loss
from .metrics import binarize, dice_per_image, hd95_per_image, iou_per_image, mean_ci, segmentation_metrics
from .models import (
    ARCHITECTURES,
    ENCODERS,
    Segmenter,
    build_segmenter,
    freeze_encoder,
    load_encoder_weights,
    parameter_counts,
)
from .overlay import mask_colours, show_overlays
from .splits import lesion_splits
from .train import fit_segmenter, predict_masks, result_row, train_and_evaluate

__all__ = [
    "SegmentationDataset", "MaskLoader", "check_masks",
    "LesionSpec", "insert_lesions", "resize_images", "LESION_COLUMNS", "lesion_splits",
    "LOSSES", "DiceBCELoss", "get_loss",
    "binarize", "dice_per_image", "iou_per_image", "hd95_per_image", "mean_ci", "segmentation_metrics",
    "ENCODERS", "ARCHITECTURES", "Segmenter", "build_segmenter", "freeze_encoder", "load_encoder_weights",
    "parameter_counts",
    "DicomSeg", "load_dicom_seg", "load_png_masks", "MASK_SUFFIX", "show_overlays", "mask_colours",
    "fit_segmenter", "predict_masks", "train_and_evaluate", "result_row",
]
