"""Pre-download weights and datasets into medkit's cache (what an instructor runs in Binder's postBuild)."""

from ..data.medmnist import DATASETS, dataset_path, dataset_state
from ..models import list_backbones, weights_path

__all__ = ["DATASETS", "dataset_state", "dataset_path", "fetch_weights", "fetch_data"]


def fetch_weights(names=None) -> dict:
    """Download (or verify) the weights of `names` (default: every backbone); return {name: path}."""
    return {name: weights_path(name) for name in (names or list_backbones())}


def fetch_data(names=None) -> dict:
    """Download the MedMNIST files `names` (default: PneumoniaMNIST at 28 and 64 px); return {name: path}."""
    return {name: dataset_path(name) for name in (names or ["pneumoniamnist", "pneumoniamnist_64"])}
