"""Checks of values every floor takes from users: one rule, one message, wherever the value arrives."""

from .errors import DataError

__all__ = ["check_channels"]


def check_channels(channels, *, allow_none: bool = False, where: str = "") -> int | None:
    """Return `channels` if it is 1 (grey) or 3 (colour), or None where allowed; else the one DataError for it."""
    if (channels is None and allow_none) or (channels in (1, 3) and not isinstance(channels, bool)):
        return channels
    also = ", or None (as the images come)" if allow_none else ""
    raise DataError(f"channels must be 1 (grey) or 3 (colour){also}, got {channels!r}{where}.")
