"""medkit: transfer learning for medical image analysis, taught in notebooks.

Submodules load on first use (`medkit.models`, `medkit.data`, ...), so `import medkit` is instant.
"""


from .base import lazy_submodules
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


__getattr__ = lazy_submodules(__name__)
