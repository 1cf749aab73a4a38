"""3-D images (lesson 11): read NIfTI and DICOM series, resample, standardise MRI, scroll, and transfer 2-D to 3-D.

Libraries: nibabel reads NIfTI (8.6 MB unpacked, numpy-only). Resampling and Nyúl standardisation are written here
on scipy (already a core dependency) rather than taken from TorchIO or MONAI, measured against the Binder budget
(wheels of December 2026): TorchIO 1.2 is small itself but requires SimpleITK (273.8 MB unpacked) and seven more
packages; MONAI 1.6 (6.5 MB) requires torch>=2.8, which would raise medkit's floor from 2.2. What the lesson uses of
either (resample to a spacing in world coordinates, percentile landmarks) is a few dozen tested lines.
"""

from .checkpoints import (
    Checkpoint,
    checkpoint_path,
    get_checkpoint,
    list_checkpoints,
    load_med3d,
    register_checkpoint,
)
from .data import ADRENAL_CLASSES, adrenal3d
from .inflate import efficientnet_body, inflate, inflate_conv, inflation_gap, min_volume_size, volume_net
from .io import Volume, check_volume_size, load_dicom_series, load_nifti, save_nifti, write_dicom_series
from .resample import isotropic, resample, resample_to
from .standardise import NyulStandardiser, distribution_gap, percentile_clip, zscore
from .transfer import compare_inits, train_and_test_volumes
from .widgets import slice_scroller

__all__ = [
    "Volume", "load_nifti", "save_nifti", "load_dicom_series", "write_dicom_series", "check_volume_size",
    "resample", "resample_to", "isotropic",
    "zscore", "percentile_clip", "NyulStandardiser", "distribution_gap",
    "slice_scroller",
    "inflate", "inflate_conv", "efficientnet_body", "volume_net", "min_volume_size", "inflation_gap",
    "adrenal3d", "ADRENAL_CLASSES", "compare_inits", "train_and_test_volumes",
    "Checkpoint", "register_checkpoint", "list_checkpoints", "get_checkpoint", "checkpoint_path", "load_med3d",
]
