"""Pre-download weights and datasets into medkit's cache (what an instructor runs in Binder's postBuild)."""

from pathlib import Path

from .cache import cache_dir, download
from .errors import UnknownNameError
from .models import list_backbones, weights_path

__all__ = ["DATASETS", "dataset_state", "dataset_path", "fetch_weights", "fetch_data"]

# MedMNIST files on Zenodo: name -> (medmnist flag, size suffix). MedMNIST publishes MD5 checksums.
DATASETS = {"pneumoniamnist": ("pneumoniamnist", ""), "pneumoniamnist_64": ("pneumoniamnist", "_64"),
            "pneumoniamnist_128": ("pneumoniamnist", "_128"), "pneumoniamnist_224": ("pneumoniamnist", "_224"),
            "chestmnist": ("chestmnist", ""), "dermamnist": ("dermamnist", ""), "bloodmnist": ("bloodmnist", ""),
            "breastmnist": ("breastmnist", ""), "organamnist": ("organamnist", "")}


def _dataset_entry(name: str) -> tuple[str, str, str]:
    """Return (url, md5, filename) of a MedMNIST file, from the medmnist package's own table."""
    if name not in DATASETS:
        raise UnknownNameError(f"Unknown dataset {name!r}. Known datasets: {', '.join(DATASETS)}.")
    from medmnist import INFO

    flag, size = DATASETS[name]
    info = INFO[flag]
    return info[f"url{size}"], info[f"MD5{size}"], f"{flag}{size}.npz"


def dataset_path(name: str) -> Path:
    """Return the cached path of a MedMNIST file, downloading it (online) or raising OfflineError."""
    url, md5, filename = _dataset_entry(name)
    return download(url, cache_dir() / "data" / filename, md5, algorithm="md5", fetch_hint=f"medkit fetch --data {name}")


def dataset_state(name: str) -> str:
    """Return 'cached', or 'not cached' for a dataset name."""
    _, _, filename = _dataset_entry(name)
    return "cached" if (cache_dir() / "data" / filename).exists() else "not cached"


def fetch_weights(names=None) -> dict:
    """Download (or verify) the weights of `names` (default: every backbone); return {name: path}."""
    return {name: weights_path(name) for name in (names or list_backbones())}


def fetch_data(names=None) -> dict:
    """Download the MedMNIST files `names` (default: PneumoniaMNIST at 28 and 64 px); return {name: path}."""
    return {name: dataset_path(name) for name in (names or ["pneumoniamnist", "pneumoniamnist_64"])}
