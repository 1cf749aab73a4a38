"""Getting medical images into a model: sources, splits, transforms and batches."""

from .dataset import ImageDataset
from .loaders import BatchLoader, to_tensor
from .medmnist import (
    HELD_OUT_SEED,
    HELD_OUT_SIZE,
    PNEUMONIA_CLASSES,
    available_splits,
    load_npz,
    pneumonia,
    sample_path,
    samples_dir,
)
from .splits import stratified_split, subsample

__all__ = [
    "ImageDataset", "BatchLoader", "to_tensor", "load_npz", "available_splits", "pneumonia", "sample_path",
    "samples_dir", "PNEUMONIA_CLASSES", "HELD_OUT_SEED", "HELD_OUT_SIZE", "stratified_split", "subsample",
]
