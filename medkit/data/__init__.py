"""Getting medical images into a model: sources, DICOM, normalisation, augmentation, splits and batches."""

from .augment import Augment, PerSample, response_curve
from .convert import normalize, resize, to_float, to_three_channels
from .dataset import ImageDataset
from .decoded import decode_key, decoded_dir, load_images
from .dicom import WINDOWS, dicom_info, read_dicom, window
from .folder import from_folder, scan_folder
from .images import ON_ERROR, check_on_error, load_image, resize_image, stack_images, to_uint8
from .intensity import foreground_mask, histogram_match, percentile_clip, zscore
from .kermany import CHEST_XRAY_SAMPLE, SECOND_SITE_SAMPLE, chest_xray_dir, chest_xrays, second_site, second_site_dir
from .loaders import BatchLoader, to_tensor
from .medmnist import (
    HELD_OUT_SEED,
    HELD_OUT_SIZE,
    PNEUMONIA_CLASSES,
    VAL_SEED,
    available_splits,
    from_medmnist,
    held_out_size,
    load_npz,
    load_splits,
    pneumonia,
    sample_path,
    samples_dir,
)
from .modalities import breast_ultrasound, dermoscopy, match_channels
from .patients import classes_per_patient, patient_key, patient_keys, pneumonia_type
from .pixels import DEFAULT_VALUE_RANGE, parse_value_range, pixels_to_uint8
from .sources import GROUP_BY, SPLIT_FOLDERS, Source, load_source
from .splits import (
    carve,
    check_no_leakage,
    check_trainable,
    group_split,
    split_dataset,
    stratified_split,
    subsample,
    train_val_test_split,
)
from .table import from_csv

__all__ = [
    "ImageDataset", "BatchLoader", "to_tensor", "load_npz", "available_splits", "pneumonia", "sample_path",
    "samples_dir", "PNEUMONIA_CLASSES", "HELD_OUT_SEED", "HELD_OUT_SIZE", "stratified_split", "subsample",
    # a MedMNIST file carved into train / val / test the way `medkit fit` and the fastai Learner read it
    "load_splits", "held_out_size", "VAL_SEED",
    # sources
    "from_medmnist", "from_folder", "scan_folder", "from_csv", "load_image", "stack_images", "to_uint8", "resize_image",
    # patient keys in file names (the Kermany chest X-rays)
    "patient_key", "patient_keys", "pneumonia_type", "classes_per_patient",
    # one --data for every source, with a split report; decode once, then memory-map
    "load_source", "Source", "GROUP_BY", "SPLIT_FOLDERS", "load_images", "decode_key", "decoded_dir",
    "ON_ERROR", "check_on_error", "pixels_to_uint8", "parse_value_range", "DEFAULT_VALUE_RANGE",
    # the bundled real-resolution chest X-rays, split by patient
    "chest_xrays", "chest_xray_dir", "CHEST_XRAY_SAMPLE",
    # lesson 12: a second site (half of the official test split, collected apart), never trained on
    "second_site", "second_site_dir", "SECOND_SITE_SAMPLE",
    # DICOM and CT windows
    "read_dicom", "dicom_info", "window", "WINDOWS",
    # MRI intensity normalisation
    "zscore", "percentile_clip", "histogram_match", "foreground_mask",
    # augmentation
    "Augment", "PerSample", "response_curve",
    # splits
    "group_split", "train_val_test_split", "split_dataset", "carve", "check_no_leakage", "check_trainable",
    # conversions for pretrained backbones
    "to_float", "to_three_channels", "resize", "normalize",
    # lesson 10: more modalities, bundled (label 1 = malignant)
    "breast_ultrasound", "dermoscopy", "match_channels",
]
