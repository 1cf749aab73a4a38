"""medkit: transfer learning for medical image analysis, taught in notebooks.

Submodules load on first use (`medkit.models`, `medkit.data`, ...), so `import medkit` is instant.
"""

import importlib

from .base._optional import MissingExtraError
from .base.errors import (
    ChecksumError,
    ConfigError,
    DataError,
    MedkitError,
    OfflineError,
    ProfileError,
    UnknownNameError,
    WeightsError,
)

__version__ = "0.1.0"
__all__ = ["MedkitError", "UnknownNameError", "DataError", "WeightsError", "ChecksumError", "OfflineError",
           "ProfileError", "ConfigError", "MissingExtraError", "print_config", "__version__"]


def print_config() -> None:
    """Print one line with versions, device and offline status (the first output of every lesson)."""
    from .core.env import print_config as _print_config

    _print_config()


def __getattr__(name):
    try:
        module = importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module 'medkit' has no attribute {name!r}") from None
    globals()[name] = module
    return module
