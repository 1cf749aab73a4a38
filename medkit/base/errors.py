"""The one exception family of medkit: every message says what is wrong and what to do."""

__all__ = [
    "MedkitError",
    "UnknownNameError",
    "DataError",
    "WeightsError",
    "ChecksumError",
    "OfflineError",
    "ProfileError",
    "ConfigError",
]


class MedkitError(Exception):
    """Base class of every error medkit raises on purpose."""


class UnknownNameError(MedkitError, KeyError):
    """A name (backbone, profile, preset, strategy...) that medkit does not know."""

    def __str__(self):  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DataError(MedkitError, ValueError):
    """Input data that is missing, malformed or inconsistent."""


class WeightsError(MedkitError):
    """Weights that cannot be found, loaded or matched to a model."""


class ChecksumError(WeightsError):
    """A file whose sha256 does not match the one it was published with."""


class OfflineError(WeightsError):
    """Something must be downloaded but medkit is offline."""


class ProfileError(UnknownNameError):
    """A profile name that is not smoke, workshop or full."""


class ConfigError(MedkitError, ValueError):
    """A setting that cannot work, such as an image size too small for a backbone's pretrained features."""
